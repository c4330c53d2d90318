package waf

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// rootFS is the file system the SecLang parser reads from: names that
// refer to the embedded rule set (@owasp_crs/…, @crs-setup.conf.example,
// @coraza.conf-recommended, possibly behind the directory of the file that
// includes them) come from coreruleset.FS, every other name from the
// operating system (the rules files of WithRulesFile and what they
// include). Coraza passes absolute and relative OS paths here, which the
// fs.FS naming rules do not allow; this type accepts them on purpose.
type rootFS struct{}

// crsName returns the name inside the embedded rule set and true when name
// refers to it.
func crsName(name string) (string, bool) {
	for _, p := range [...]string{"@owasp_crs/", "@crs-setup.conf", "@coraza.conf"} {
		if i := strings.Index(name, p); i >= 0 {
			return name[i:], true
		}
	}
	return "", false
}

func (rootFS) Open(name string) (fs.File, error) {
	if n, ok := crsName(name); ok {
		return coreruleset.FS.Open(n)
	}
	return os.Open(name)
}

func (rootFS) ReadFile(name string) ([]byte, error) {
	if n, ok := crsName(name); ok {
		return fs.ReadFile(coreruleset.FS, n)
	}
	return os.ReadFile(name)
}

func (rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if n, ok := crsName(name + "/"); ok {
		return fs.ReadDir(coreruleset.FS, strings.TrimSuffix(n, "/"))
	}
	return os.ReadDir(name)
}

func (rootFS) Glob(pattern string) ([]string, error) {
	if n, ok := crsName(pattern); ok {
		return fs.Glob(coreruleset.FS, n)
	}
	return filepath.Glob(pattern)
}
