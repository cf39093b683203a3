// Command gosumdb is the lab's Go module upstream (scripts/lab/start-goproxy.sh): on one address
// it serves a GOPROXY tree of plain files and a checksum database for those modules, made by
// scripts/lab/make-go-fixtures.sh, the way a module proxy that fronts a checksum database does:
//
//	/<module>/@v/list, /<module>/@v/<v>.info|.mod|.zip, /<module>/@latest   files of DIR/proxy
//	/sumdb/<name>/supported                                                 200, empty
//	/sumdb/<name>/lookup/<module>@<v>, /sumdb/<name>/tile/..., /sumdb/<name>/latest
//
// The database (golang.org/x/mod/sumdb) is signed with DIR/sumdb/skey and holds the go.sum lines
// of DIR/sumdb/gosum, written when the fixtures were made: a zip changed afterwards
// (scripts/lab/tamper-go-zip.sh) no longer matches what the database says. Every go.sum record
// is added at start in sorted order, so the tree, and its signed head, is the same on every start.
// Files are read from disk on each request. Each request is logged to -log in the Apache common
// format (scripts/lab/count-upstream.py counts it).
//
// Usage: gosumdb -addr 127.0.0.1:PORT -dir DIR -log FILE
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
)

const sumdbName = "sum.example.com"

// loadRecords reads go.sum lines ("path version h1:…" and "path version/go.mod h1:…") into one
// database record per module version: both lines, as the checksum database stores them.
func loadRecords(file string) (map[module.Version][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	records := map[module.Version][]byte{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 3 {
			continue
		}
		m := module.Version{Path: fields[0], Version: strings.TrimSuffix(fields[1], "/go.mod")}
		records[m] = append(records[m], []byte(scanner.Text()+"\n")...)
	}
	return records, scanner.Err()
}

// accessLog writes one Apache common format line per request.
type accessLog struct {
	mu   sync.Mutex
	file *os.File
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += n
	return n, err
}

func (l *accessLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		size := "-"
		if rec.bytes > 0 {
			size = fmt.Sprint(rec.bytes)
		}
		line := fmt.Sprintf("%s - - [%s] \"%s %s %s\" %d %s\n", host,
			time.Now().Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.URL.RequestURI(), r.Proto,
			rec.status, size)
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, err := l.file.WriteString(line); err != nil {
			log.Printf("access log: %v", err)
		}
	})
}

func run(addr, dir, logFile string) error {
	skey, err := os.ReadFile(filepath.Join(dir, "sumdb", "skey"))
	if err != nil {
		return err
	}
	records, err := loadRecords(filepath.Join(dir, "sumdb", "gosum"))
	if err != nil {
		return err
	}
	ops := sumdb.NewTestServer(strings.TrimSpace(string(skey)), func(path, version string) ([]byte, error) {
		record, ok := records[module.Version{Path: path, Version: version}]
		if !ok {
			// os.IsNotExist: the sumdb server answers 404.
			return nil, &os.PathError{Op: "lookup", Path: path + "@" + version, Err: os.ErrNotExist}
		}
		return record, nil
	})
	versions := make([]module.Version, 0, len(records))
	for m := range records {
		versions = append(versions, m)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].String() < versions[j].String() })
	for _, m := range versions {
		if _, err := ops.Lookup(context.Background(), m); err != nil {
			return fmt.Errorf("add %s: %w", m, err)
		}
	}

	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()

	prefix := "/sumdb/" + sumdbName
	database := http.StripPrefix(prefix, sumdb.NewServer(ops))
	files := http.FileServer(http.Dir(filepath.Join(dir, "proxy")))
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"/supported", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.Handle(prefix+"/", database)
	mux.HandleFunc("/sumdb/", http.NotFound)
	mux.Handle("/", files)

	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("serving %s/proxy and checksum database %s (%d records) on http://%s", dir, sumdbName,
		len(versions), listener.Addr())
	server := &http.Server{Handler: (&accessLog{file: logf}).wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dir := flag.String("dir", "", "fixtures directory of make-go-fixtures.sh (proxy/, sumdb/)")
	logFile := flag.String("log", "", "access log file (appended)")
	flag.Parse()
	if *dir == "" || *logFile == "" {
		fmt.Fprintln(os.Stderr, "usage: gosumdb -addr 127.0.0.1:PORT -dir DIR -log FILE")
		os.Exit(2)
	}
	if err := run(*addr, *dir, *logFile); err != nil {
		log.Fatal(err)
	}
}
