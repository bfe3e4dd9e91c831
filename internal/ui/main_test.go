package ui_test

import (
	"testing"

	"github.com/hershyorg/hershy/internal/leakcheck"
)

// TestMain fails the package when goroutines outlive its tests: every
// Host, API, dashboard and server a test starts must be gone at its end
// (sessions need no goroutine; page reads that fan out join before the
// page is written).
func TestMain(m *testing.M) { leakcheck.Main(m) }
