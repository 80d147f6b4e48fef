package authz

import (
	"strconv"
	"unicode/utf8"
)

// MaxPathInMessage bounds how much of a request's path a refusal quotes:
// the path is the caller's to choose (up to the server's header limit), and
// refusals are journaled.
const MaxPathInMessage = 128

// shortPath returns p cut to MaxPathInMessage bytes (on a rune boundary),
// marked when cut.
func shortPath(p string) string {
	if len(p) <= MaxPathInMessage {
		return p
	}
	cut := MaxPathInMessage
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return p[:cut] + "…(" + strconv.Itoa(len(p)) + " bytes)"
}

// RefusalKey is what refusals are counted under: the caller's uid, the
// route and the reason (the role needed and the role held, or that the
// caller was not identified). Paths outside the route table are one route,
// "unknown", so a caller cannot open a new count per path it makes up.
// The journal writes the first refusal of a key at once and counts its
// repeats into one summary a minute (journal.Repeats), so no caller can
// grow the journal faster than a few records a minute per route.
func RefusalKey(e *DeniedError) string {
	route := "unknown"
	if e.Known {
		route = e.Method + " " + e.Path
	}
	return "access_denied/" + strconv.Itoa(e.Peer.UID) + "/" + route + "/" + RefusalCode(e)
}

// RefusalCode names a refusal's reason stably: "need operate, have read",
// or "need read, unidentified".
func RefusalCode(e *DeniedError) string {
	if e.Peer.UID < 0 {
		return "need " + e.Need.String() + ", unidentified"
	}
	return "need " + e.Need.String() + ", have " + e.Have.String()
}
