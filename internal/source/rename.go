package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// renameChecked is renameNoReplace for systems without RENAME_NOREPLACE:
// check, then rename (a race with a concurrent creator remains).
func renameChecked(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return fmt.Errorf("%s: %w", newpath, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(oldpath, newpath)
}
