package platform_test

import (
	"testing"

	"github.com/authkit-go/authkit/internal/goroutines"
)

// TestMain fails the run if a goroutine is left once the tests end.
func TestMain(m *testing.M) { goroutines.VerifyTestMain(m) }
