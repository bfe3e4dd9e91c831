package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/spf13/pflag"
)

// applyConfig sets every flag the config file names and the command line
// did not: the file holds one JSON object whose keys are serve's flag
// names and whose values are strings, numbers, booleans or, for a flag
// that repeats, arrays. An unknown key is an error, so a misspelt setting
// is not silently ignored. An empty path does nothing.
func applyConfig(f *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var settings map[string]any
	if err := dec.Decode(&settings); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	for key, v := range settings {
		fl := f.Lookup(key)
		if fl == nil || key == "config" {
			return fmt.Errorf("--config %s: unknown setting %q (the keys are serve's flag names)", path, key)
		}
		if fl.Changed {
			continue // the command line wins
		}
		var values []string
		switch v := v.(type) {
		case string:
			values = []string{v}
		case json.Number:
			values = []string{v.String()}
		case bool:
			values = []string{fmt.Sprint(v)}
		case []any:
			for _, e := range v {
				values = append(values, fmt.Sprint(e))
			}
		default:
			return fmt.Errorf("--config %s: %s: want a string, number, boolean or array", path, key)
		}
		if len(values) > 1 && !strings.HasSuffix(fl.Value.Type(), "Slice") && !strings.HasSuffix(fl.Value.Type(), "Array") {
			return fmt.Errorf("--config %s: %s takes one value", path, key)
		}
		for _, val := range values {
			if err := f.Set(key, val); err != nil {
				return fmt.Errorf("--config %s: %s: %w", path, key, err)
			}
		}
	}
	return nil
}

// givenFlags are the flags the command line set, by name (slices left
// out: no quota is one).
func givenFlags(f *pflag.FlagSet) map[string]string {
	given := map[string]string{}
	f.Visit(func(fl *pflag.Flag) {
		if !strings.HasSuffix(fl.Value.Type(), "Slice") {
			given[fl.Name] = fl.Value.String()
		}
	})
	return given
}

// reloadQuotas reads the quotas again as serve would now: the command
// line's flags (given), then the config file, then the defaults.
func reloadQuotas(given map[string]string, path string) (host.Quotas, error) {
	var o serveOpts
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	serveFlags(f, &o)
	for name, v := range given {
		if f.Lookup(name) == nil {
			continue
		}
		if err := f.Set(name, v); err != nil {
			return host.Quotas{}, err
		}
	}
	if err := applyConfig(f, path); err != nil {
		return host.Quotas{}, err
	}
	return o.quotas, nil
}
