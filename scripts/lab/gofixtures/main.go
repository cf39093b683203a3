// Command gofixtures writes the Go module fixtures of scripts/lab/make-go-fixtures.sh: module
// sources, a GOPROXY tree of them made with golang.org/x/mod/zip (the code cmd/go itself uses to
// make and check module zips), their go.sum lines (golang.org/x/mod/sumdb/dirhash, as cmd/go
// hashes them) and a checksum database key pair for scripts/lab/gosumdb.
//
// Usage: gofixtures -out OUT_DIR [-n N]
//
// Everything it writes is deterministic (zips carry no times, data files come from a fixed
// seed, the key is derived from a fixed seed), so every run writes the same bytes and hashes.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"
)

// SumdbName is the checksum database's name, as GOSUMDB and the /sumdb/NAME/ paths spell it.
const sumdbName = "sum.example.com"

// fixture is one version of one module.
type fixture struct {
	path     string
	version  string
	pkg      string
	requires []module.Version
	// dataSize is the size of data.bin: enough bytes that a transfer takes a moment, so
	// concurrent clients overlap.
	dataSize int
	time     time.Time
}

// seededStream is an endless deterministic byte stream: sha256(seed || counter) blocks. Not for
// secrets: the fixture key is meant to be the same on every run.
type seededStream struct {
	seed    string
	counter uint64
	buf     []byte
}

func (s *seededStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.buf) == 0 {
			block := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", s.seed, s.counter)))
			s.counter++
			s.buf = block[:]
		}
		c := copy(p[n:], s.buf)
		s.buf = s.buf[c:]
		n += c
	}
	return n, nil
}

func fixtures(generated int) []fixture {
	day := func(d int) time.Time { return time.Date(2024, 1, d, 12, 0, 0, 0, time.UTC) }
	beta := "example.com/dp/Beta"
	alpha := "example.com/dp/alpha"
	list := []fixture{
		{path: beta, version: "v1.0.0", pkg: "beta", dataSize: 256 << 10, time: day(1)},
		{path: beta, version: "v1.1.0", pkg: "beta", dataSize: 256 << 10, time: day(3)},
		{path: alpha, version: "v1.0.0", pkg: "alpha", dataSize: 256 << 10, time: day(2)},
		{path: alpha, version: "v1.1.0", pkg: "alpha", dataSize: 256 << 10, time: day(4),
			requires: []module.Version{{Path: beta, Version: "v1.0.0"}}},
	}
	for i := 0; i < generated; i++ {
		name := fmt.Sprintf("m%02d", i)
		list = append(list, fixture{path: "example.com/dp/gen/" + name, version: "v1.0.0", pkg: name,
			dataSize: 64 << 10, time: day(5)})
	}
	return list
}

func goMod(f fixture) string {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo 1.19\n", f.path)
	if len(f.requires) > 0 {
		b.WriteString("\nrequire (\n")
		for _, r := range f.requires {
			fmt.Fprintf(&b, "\t%s %s\n", r.Path, r.Version)
		}
		b.WriteString(")\n")
	}
	return b.String()
}

// goSource is the package: Version() names the module version and those of what it imports, so
// a consumer's output shows which versions were built.
func goSource(f fixture) string {
	var imports, calls strings.Builder
	for _, r := range f.requires {
		pkg := strings.ToLower(r.Path[strings.LastIndex(r.Path, "/")+1:])
		fmt.Fprintf(&imports, "import %q\n", r.Path)
		fmt.Fprintf(&calls, " + \" (\" + %s.Version() + \")\"", pkg)
	}
	return fmt.Sprintf("// Package %s is a depproxy lab fixture module.\npackage %s\n\n%s\n"+
		"// Version names this module version and those of the modules it imports.\n"+
		"func Version() string { return %q%s }\n",
		f.pkg, f.pkg, imports.String(), f.path+"@"+f.version, calls.String())
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

type info struct {
	Version string
	Time    time.Time
}

func run(out string, generated int) error {
	proxy := filepath.Join(out, "proxy")
	versions := map[string][]fixture{}
	var gosum []string
	for _, f := range fixtures(generated) {
		m := module.Version{Path: f.path, Version: f.version}
		src := filepath.Join(out, "src", f.path+"@"+f.version)
		data := make([]byte, f.dataSize)
		if _, err := io.ReadFull(&seededStream{seed: m.String()}, data); err != nil {
			return err
		}
		mod := []byte(goMod(f))
		files := map[string][]byte{
			"go.mod":      mod,
			f.pkg + ".go": []byte(goSource(f)),
			"data.bin":    data,
			"LICENSE":     []byte("Fixture module of the depproxy lab; no rights reserved.\n"),
		}
		for name, content := range files {
			if err := writeFile(filepath.Join(src, name), content); err != nil {
				return err
			}
		}

		escaped, err := module.EscapePath(f.path)
		if err != nil {
			return err
		}
		escapedVersion, err := module.EscapeVersion(f.version)
		if err != nil {
			return err
		}
		base := filepath.Join(proxy, escaped, "@v", escapedVersion)
		var zipped bytes.Buffer
		if err := modzip.CreateFromDir(&zipped, m, src); err != nil {
			return fmt.Errorf("zip %s: %w", m, err)
		}
		if err := writeFile(base+".zip", zipped.Bytes()); err != nil {
			return err
		}
		if err := writeFile(base+".mod", mod); err != nil {
			return err
		}
		infoJSON, err := json.Marshal(info{Version: f.version, Time: f.time})
		if err != nil {
			return err
		}
		if err := writeFile(base+".info", append(infoJSON, '\n')); err != nil {
			return err
		}

		zipHash, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
		if err != nil {
			return err
		}
		modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(mod)), nil
		})
		if err != nil {
			return err
		}
		gosum = append(gosum, fmt.Sprintf("%s %s %s", f.path, f.version, zipHash),
			fmt.Sprintf("%s %s/go.mod %s", f.path, f.version, modHash))
		versions[f.path] = append(versions[f.path], f)
	}

	for path, list := range versions {
		sort.Slice(list, func(i, j int) bool { return semver.Compare(list[i].version, list[j].version) < 0 })
		var names strings.Builder
		for _, f := range list {
			names.WriteString(f.version + "\n")
		}
		escaped, err := module.EscapePath(path)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(proxy, escaped, "@v", "list"), []byte(names.String())); err != nil {
			return err
		}
		newest := list[len(list)-1]
		latest, err := json.Marshal(info{Version: newest.version, Time: newest.time})
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(proxy, escaped, "@latest"), append(latest, '\n')); err != nil {
			return err
		}
	}

	sort.Strings(gosum)
	if err := writeFile(filepath.Join(out, "sumdb", "gosum"), []byte(strings.Join(gosum, "\n")+"\n")); err != nil {
		return err
	}
	skey, vkey, err := note.GenerateKey(&seededStream{seed: "depproxy lab " + sumdbName}, sumdbName)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(out, "sumdb", "skey"), []byte(skey+"\n")); err != nil {
		return err
	}
	return writeFile(filepath.Join(out, "sumdb.key"), []byte(vkey+"\n"))
}

func main() {
	out := flag.String("out", "", "output directory")
	generated := flag.Int("n", 0, "how many example.com/dp/gen/mNN modules to add")
	flag.Parse()
	if *out == "" || *generated < 0 || *generated > 100 {
		fmt.Fprintln(os.Stderr, "usage: gofixtures -out OUT_DIR [-n N (0..100)]")
		os.Exit(2)
	}
	if err := run(*out, *generated); err != nil {
		fmt.Fprintln(os.Stderr, "gofixtures:", err)
		os.Exit(1)
	}
}
