//go:build unix

package regularfile

import "syscall"

// openFlags make the open itself safe if the path was swapped for
// something else after Stat: O_NONBLOCK returns at once from a FIFO with
// no writer (and changes nothing for a regular file, which never blocks),
// O_NOCTTY keeps a terminal from becoming the controlling one.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY
