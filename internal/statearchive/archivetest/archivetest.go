// Package archivetest makes and reads /state archives for tests of the
// code that checks them (package statearchive, the Host, the drivers'
// copiers): hostile ones included, written entry by entry.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"testing"
)

// Make writes a gzip'd tar of the headers (mode 0600), each regular file
// filled with zeros of its size (so a bomb compresses to little).
func Make(t testing.TB, hdrs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		h.Mode = 0o600
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(make([]byte, h.Size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Names lists a gzip'd tar's entry names, in order, up to the first
// error.
func Names(t testing.TB, b []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			return names
		}
		names = append(names, h.Name)
	}
}
