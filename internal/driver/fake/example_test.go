package fake_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
)

var limits = driver.Limits{MemoryBytes: 64 << 20, CPUs: 1, Pids: 64, LogBytes: 1 << 20}

// A program that crashes when the test says so: the engine reports its
// start, then its death with the exit code.
func ExampleDriver_Exit() {
	d := fake.New(fake.Options{})
	defer d.Close()
	d.AddImage("app:1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := d.Events(ctx)

	id, _ := d.CreateContainer(ctx, driver.ContainerSpec{
		Name: "app", Image: "app:1", Runtime: driver.RuntimeRunc, User: "10001:10001",
		Labels: map[string]string{driver.LabelProgram: "p1"}, Limits: limits,
	})
	d.StartContainer(ctx, id)
	d.Exit(id, 3)
	for i := 0; i < 2; i++ {
		ev := <-events
		fmt.Println(ev.Kind, ev.ExitCode, ev.Labels[driver.LabelProgram])
	}
	// Output:
	// start 0 p1
	// die 3 p1
}

// A create whose reply is lost: the engine made the container, the caller
// got an error, and only a list by label finds it.
func ExampleHooks() {
	d := fake.New(fake.Options{Hooks: fake.Hooks{
		After: func(ctx context.Context, c fake.Call, err error) error {
			if c.Method == "CreateContainer" {
				return errors.New("connection reset by peer")
			}
			return err
		},
	}})
	defer d.Close()
	d.AddImage("app:1", nil)
	ctx := context.Background()
	_, err := d.CreateContainer(ctx, driver.ContainerSpec{
		Name: "app", Image: "app:1", Runtime: driver.RuntimeRunc, User: "10001:10001",
		Labels: map[string]string{driver.LabelProgram: "p1"}, Limits: limits,
	})
	fmt.Println(err)
	found, _ := d.ListContainers(ctx, map[string]string{driver.LabelProgram: "p1"})
	fmt.Println(len(found), found[0].Name, found[0].Running)
	// Output:
	// connection reset by peer
	// 1 app false
}

// A build job that leaves its output in its writable mount, as the Host's
// Go builds leave the binary in /out.
func ExampleOptions_job() {
	d := fake.New(fake.Options{Job: func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout(), "compiling", p.Args()[1])
		if err := p.WriteFile("/out/app", []byte("binary"), 0o755); err != nil {
			fmt.Fprintln(p.Stderr(), err)
			return 1
		}
		return 0
	}})
	defer d.Close()
	d.AddImage("builder:1", nil)
	out, _ := os.MkdirTemp("", "fake-example-")
	defer os.RemoveAll(out)
	res, err := d.RunJob(context.Background(), driver.JobSpec{
		Name: "build", Image: "builder:1", Runtime: driver.RuntimeRunc, User: "65532:65532",
		Cmd: []string{"go", "build"}, Mounts: []driver.Mount{{Source: out, Target: "/out"}}, Limits: limits,
	}, os.Stdout)
	b, _ := os.ReadFile(filepath.Join(out, "app"))
	fmt.Println(res.ExitCode, err, string(b))
	// Output:
	// compiling build
	// 0 <nil> binary
}
