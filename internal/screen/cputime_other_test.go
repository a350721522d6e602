//go:build !linux

package screen

import "time"

func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }
