package receiver

import (
	"strings"
	"time"
	"unicode"
)

// parseHTTPDate parses X-Goog-Channel-Expiration, an IMF-fixdate such as
// "Tue, 19 Nov 2013 01:13:52 GMT", accepting exactly what the Rust library accepts
// (chrono's "%a, %d %b %Y %H:%M:%S GMT"): names in any letter case, blanks between the
// fields optional, one- or two-digit day and time fields, a year of one to four digits
// or signed, a weekday that must be the date's, and second 60 as a leap second (taken
// as the last instant of second 59).
func parseHTTPDate(s string) (time.Time, bool) {
	p := dateParser{s: strings.TrimFunc(s, unicode.IsSpace)}
	weekday, ok := p.weekday()
	ok = ok && p.literal(",")
	p.space()
	day, ok2 := p.number(2, 1, 31)
	ok = ok && ok2
	p.space()
	month, ok3 := p.month()
	ok = ok && ok3
	p.space()
	year, ok4 := p.year()
	ok = ok && ok4
	p.space()
	hour, ok5 := p.number(2, 0, 23)
	ok = ok && ok5 && p.literal(":")
	minute, ok6 := p.number(2, 0, 59)
	ok = ok && ok6 && p.literal(":")
	second, ok7 := p.number(2, 0, 60)
	ok = ok && ok7
	p.space()
	ok = ok && p.literal("GMT") && p.s == "" && !p.failed
	if !ok || year < minYear || year > maxYear {
		return time.Time{}, false
	}
	date := time.Date(int(year), time.Month(month), int(day), 0, 0, 0, 0, time.UTC)
	if date.Day() != int(day) || date.Weekday() != weekday {
		return time.Time{}, false // no such day in that month, or another weekday
	}
	nanos := time.Duration(0)
	if second == 60 {
		second, nanos = 59, time.Second-1
	}
	return date.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute +
		time.Duration(second)*time.Second + nanos), true
}

// The years chrono's dates can hold.
const (
	minYear = -262143
	maxYear = 262142
)

// dateParser consumes s from the front; after the first failure every step fails.
type dateParser struct {
	s      string
	failed bool
}

func (p *dateParser) fail() bool {
	p.failed = true
	return false
}

func (p *dateParser) space() {
	p.s = strings.TrimLeftFunc(p.s, unicode.IsSpace)
}

func (p *dateParser) literal(want string) bool {
	if p.failed || !strings.HasPrefix(p.s, want) {
		return p.fail()
	}
	p.s = p.s[len(want):]
	return true
}

// name matches the first three bytes of p.s against names, ignoring ASCII case.
func (p *dateParser) name(names []string) (int, bool) {
	if p.failed || len(p.s) < 3 {
		return 0, p.fail()
	}
	for i, n := range names {
		if equalFoldASCII(p.s[:3], n) {
			p.s = p.s[3:]
			return i, true
		}
	}
	return 0, p.fail()
}

var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
var monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

func (p *dateParser) weekday() (time.Weekday, bool) {
	i, ok := p.name(weekdayNames)
	return time.Weekday(i), ok
}

func (p *dateParser) month() (int, bool) {
	i, ok := p.name(monthNames)
	return i + 1, ok
}

// digits reads 1 to max ASCII digits after optional blanks.
func (p *dateParser) digits(max int) (int64, bool) {
	if p.failed {
		return 0, false
	}
	p.space()
	n, v := 0, int64(0)
	for n < len(p.s) && n < max && '0' <= p.s[n] && p.s[n] <= '9' {
		if v > (1<<63-1-9)/10 {
			return 0, p.fail() // more than an int64 holds
		}
		v = v*10 + int64(p.s[n]-'0')
		n++
	}
	if n == 0 {
		return 0, p.fail()
	}
	p.s = p.s[n:]
	return v, true
}

func (p *dateParser) number(width int, min, max int64) (int64, bool) {
	v, ok := p.digits(width)
	if !ok || v < min || v > max {
		return 0, p.fail()
	}
	return v, true
}

// year reads up to four digits, or a sign followed by any number of digits.
func (p *dateParser) year() (int64, bool) {
	if p.failed {
		return 0, false
	}
	p.space()
	if strings.HasPrefix(p.s, "-") || strings.HasPrefix(p.s, "+") {
		negative := p.s[0] == '-'
		p.s = p.s[1:]
		if p.s == "" || p.s[0] < '0' || p.s[0] > '9' {
			return 0, p.fail() // a sign must be followed by a digit, with no blank
		}
		v, ok := p.digits(len(p.s))
		if negative {
			v = -v
		}
		return v, ok
	}
	return p.digits(4)
}
