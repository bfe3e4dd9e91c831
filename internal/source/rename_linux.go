package source

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames oldpath to newpath, failing (with fs.ErrExist)
// if newpath exists, even as an empty folder, which rename(2) would replace.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: %w", newpath, fs.ErrExist)
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL):
		return renameChecked(oldpath, newpath) // the filesystem cannot do it
	default:
		return &fs.PathError{Op: "rename", Path: newpath, Err: err}
	}
}
