// A test program for the Host's /state cap. At each start it logs what
// /state holds; on the message "fill" it writes a marker, then appends to
// /state/fill until a write fails, and logs how much it wrote and whether
// the failure was ENOSPC. It stops by itself at 64 MiB, so a Host without
// a cap cannot fill its disk through it.
package main

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/hershyorg/hershy/hersh"
)

const stop = 64 << 20

func main() {
	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error {
		if c.Trigger().Kind == hersh.TriggerStart {
			marker, err := os.ReadFile("/state/marker")
			size := int64(-1)
			if st, serr := os.Stat("/state/fill"); serr == nil {
				size = st.Size()
			}
			log.Printf("start: marker=%q err=%v fill=%d", marker, err, size)
		}
		if m := c.Message(); m != nil && m.Content == "fill" {
			if err := os.WriteFile("/state/marker", []byte("kept"), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
				log.Printf("marker: %v", err)
			}
			n, err := fill("/state/fill")
			log.Printf("fill: wrote=%d enospc=%v err=%v", n, errors.Is(err, syscall.ENOSPC), err)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	os.Exit(hersh.ExitCode(w.Run(ctx)))
}

// fill appends 64 KiB chunks to name, each synced to disk, until a write
// fails or stop bytes are written.
func fill(name string) (int64, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	var n int64
	for n < stop {
		k, err := f.Write(chunk)
		n += int64(k)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
