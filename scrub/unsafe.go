package scrub

import "unsafe"

// bytesToString aliases b without copying. Callers guarantee b is not
// modified while the string is in use: the parsed tree lives only for the
// duration of one Scrub call, and the input is never written to.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
