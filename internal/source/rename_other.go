//go:build !linux

package source

func renameNoReplace(oldpath, newpath string) error { return renameChecked(oldpath, newpath) }
