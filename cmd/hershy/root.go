package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/spf13/cobra"
)

// app carries the global flags and output streams of one invocation.
type app struct {
	url, token, output string
	out, errOut        io.Writer
}

// usageError marks errors caused by bad command-line use (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Writes may come from more than one goroutine (deploy streams the
	// build log while it reports state changes).
	a := &app{out: &syncWriter{w: stdout}, errOut: &syncWriter{w: stderr}}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "hershy: "+err.Error())
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "hershy",
		Short:         "Run and manage Hersh programs on a Hershy Host",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "" && a.output != "table" && a.output != "json" {
				return usageError{fmt.Errorf("unknown output format %q (want table or json)", a.output)}
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "Host URL (env HERSHY_URL, config file; default "+client.DefaultURL+")")
	pf.StringVar(&a.token, "token", "", "bearer token (env HERSHY_TOKEN, config file)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(
		a.serveCmd(), a.deployCmd(), a.psCmd(), a.inspectCmd(),
		a.actionCmd("start", "Build if needed and start a program"),
		a.actionCmd("stop", "Stop a program gracefully"),
		a.actionCmd("restart", "Stop then start a program"),
		a.rmCmd(), a.logsCmd(), a.sendCmd(), a.statusCmd(), a.watchCmd(), a.tokenCmd(),
		a.sourceCmd(), a.statsCmd(), a.benchCmd(), a.soakCmd(), a.releasesCmd(), a.rollbackCmd(), a.stateCmd(), a.webhookCmd(),
	)
	return root
}

// config is ~/.config/hershy/config.json.
type config struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func configPath() string {
	if p := os.Getenv("HERSHY_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "hershy", "config.json")
}

// client resolves URL and token: flag, then environment, then config file.
func (a *app) client() (*client.Client, error) {
	url, token := a.url, a.token
	if url == "" {
		url = os.Getenv("HERSHY_URL")
	}
	if token == "" {
		token = os.Getenv("HERSHY_TOKEN")
	}
	if url == "" || token == "" {
		if p := configPath(); p != "" {
			data, err := os.ReadFile(p)
			switch {
			case err == nil:
				var c config
				if err := json.Unmarshal(data, &c); err != nil {
					return nil, fmt.Errorf("config file %s: %w", p, err)
				}
				if url == "" {
					url = c.URL
				}
				if token == "" {
					token = c.Token
				}
			case !errors.Is(err, os.ErrNotExist):
				return nil, fmt.Errorf("config file: %w", err)
			}
		}
	}
	return client.New(url, token), nil
}

func (a *app) jsonOut() bool { return a.output == "json" }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func exactArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.ExactArgs(n)) }

func rangeArgs(min, max int) cobra.PositionalArgs { return usageArgs(cobra.RangeArgs(min, max)) }

// usageArgs turns check's complaint into a usage error naming the usage line.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w (usage: %s)", cmd.Name(), err, cmd.UseLine())}
		}
		return nil
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
