package gwconfig_test

import (
	"fmt"

	"github.com/agentwire/agentwire/internal/gwconfig"
)

// Reading agent definitions written for the Zentinel proxy.
func ExampleParse() {
	src := []byte(`
agents {
    agent "waf" type="waf" {
        unix-socket "/run/waf.sock"
        events "request_headers" "request_body"
        timeout-ms 200
        failure-mode "open"
        request-body-mode "stream"
        config {
            paranoia-level 2
            block-mode #true
        }
    }
}`)
	c, err := gwconfig.Parse("waf.kdl", src, gwconfig.Defaults{})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := c.Agents[0]
	fmt.Println(a.ID, a.Endpoints[0].Target(), a.Events, a.Timeout, a.FailureMode, a.RequestBodyMode, a.MaxRequestBodyBytes)
	fmt.Println(string(a.Config))

	_, err = gwconfig.Parse("bad.kdl", []byte("agent \"waf\" {\n  unix-socket \"/run/waf.sock\"\n  timeout-ms 0\n}"), gwconfig.Defaults{})
	fmt.Println(err)
	// Output:
	// waf unix:/run/waf.sock request_headers request_body 200ms open stream 1048576
	// {"block-mode":true,"paranoia-level":2}
	// agentwire: config bad.kdl:3: timeout-ms 0 out of range (1 to 3600000)
}
