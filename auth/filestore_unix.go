//go:build unix

package auth

import (
	"io/fs"
	"os"
	"syscall"
)

// lockFlag opens a lock file without following a symbolic link: a link
// planted in the token directory cannot make the lock open (or create) a
// file elsewhere.
const lockFlag = os.O_CREATE | os.O_RDONLY | syscall.O_NOFOLLOW

// checkOwner refuses a token directory that another user owns: its owner
// could read or replace the tokens whatever the mode says.
func checkOwner(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return configError("token directory %q belongs to user %d, not to this process's user %d; choose a directory of your own", dir, st.Uid, uid)
	}
	return nil
}
