package receiver

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// parseMetadata parses X-Watchwire-Metadata: a JSON object, numbers kept as
// json.Number so that no digit is lost. It refuses what the Rust library's JSON parser
// refuses and encoding/json alone would accept: a number too large for a float64, an
// escaped lone surrogate (\ud800), and nesting deeper than 127 levels.
func parseMetadata(s string) (map[string]interface{}, bool) {
	text := []byte(s)
	if !json.Valid(text) {
		return nil, false // also refuses anything after the object
	}
	if t := bytes.TrimLeft(text, " \t\r\n"); t[0] != '{' {
		return nil, false // "null" would decode into a nil map without an error
	}
	decoder := json.NewDecoder(bytes.NewReader(text))
	decoder.UseNumber()
	var object map[string]interface{}
	if err := decoder.Decode(&object); err != nil {
		return nil, false
	}
	if !strictJSONText(text) || !finiteNumbers(object) {
		return nil, false
	}
	return object, true
}

// maxJSONDepth is how deep arrays and objects may nest (the Rust parser's limit).
const maxJSONDepth = 127

// strictJSONText checks valid JSON text for what encoding/json lets through: escaped
// surrogates that do not form a pair, and nesting beyond maxJSONDepth.
func strictJSONText(text []byte) bool {
	depth := 0
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '{', '[':
			depth++
			if depth > maxJSONDepth {
				return false
			}
		case '}', ']':
			depth--
		case '"':
			end, ok := checkString(text, i+1)
			if !ok {
				return false
			}
			i = end
		}
	}
	return true
}

// checkString scans the string that starts at text[i] (after its opening quote) and
// returns the index of its closing quote; ok is false for an unpaired surrogate escape.
func checkString(text []byte, i int) (end int, ok bool) {
	for ; i < len(text); i++ {
		switch text[i] {
		case '"':
			return i, true
		case '\\':
			if i+1 < len(text) && text[i+1] == 'u' {
				unit, next := hex4(text, i+2)
				switch {
				case unit >= 0xDC00 && unit <= 0xDFFF:
					return i, false // a trailing surrogate first
				case unit >= 0xD800 && unit <= 0xDBFF:
					if next+1 >= len(text) || text[next] != '\\' || text[next+1] != 'u' {
						return i, false
					}
					low, after := hex4(text, next+2)
					if low < 0xDC00 || low > 0xDFFF {
						return i, false
					}
					i = after - 1
				default:
					i = next - 1
				}
			} else {
				i++ // the escaped character
			}
		}
	}
	return i, true
}

// hex4 reads the four hex digits at text[i:] (present: the text is valid JSON).
func hex4(text []byte, i int) (value int, next int) {
	if i+4 > len(text) {
		return -1, len(text)
	}
	v, err := strconv.ParseUint(string(text[i:i+4]), 16, 32)
	if err != nil {
		return -1, i + 4
	}
	return int(v), i + 4
}

// finiteNumbers reports whether every number in v fits a float64.
func finiteNumbers(v interface{}) bool {
	switch v := v.(type) {
	case json.Number:
		_, err := strconv.ParseFloat(string(v), 64)
		return err == nil
	case map[string]interface{}:
		for _, item := range v {
			if !finiteNumbers(item) {
				return false
			}
		}
	case []interface{}:
		for _, item := range v {
			if !finiteNumbers(item) {
				return false
			}
		}
	}
	return true
}
