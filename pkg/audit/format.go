package audit

import (
	"math"
	"strconv"
	"strings"
)

// Number formats used in the report.

func pct(f float64) string { return strconv.FormatFloat(round(f*100, 2), 'f', -1, 64) + "%" }

func ms(f float64) string { return strconv.FormatFloat(round(f, 1), 'f', -1, 64) + "ms" }

func gb(f float64) string { return strconv.FormatFloat(round(f, 1), 'f', -1, 64) + "GB" }

func plain(f float64) string { return strconv.FormatFloat(round(f, 2), 'f', -1, 64) }

func count(f float64) string { return strconv.FormatFloat(round(f, 0), 'f', -1, 64) }

func round(f float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(f*p) / p
}

// mdEscaper escapes the characters that would turn journal text (which
// anyone who can write the manifest or call the API influences) into
// Markdown or HTML structure.
var mdEscaper = strings.NewReplacer(
	"\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]",
	"<", "&lt;", ">", "&gt;", "|", "\\|", "#", "\\#", "\r\n", " ", "\n", " ", "\r", " ",
)

// md makes free text safe to embed in a Markdown line.
func md(s string) string { return mdEscaper.Replace(s) }
