package record

import (
	"encoding/binary"
	"fmt"
)

// Arrays encode as JSON arrays of their elements' encoding, nested once per
// dimension (docs/records.md#values, cdcd's choice). Lower bounds are dropped: JSON
// arrays start at index 0 whatever PostgreSQL's subscripts say.

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// appendTextArray parses array_out's text, e.g. {1,2,NULL,"a b"} or
// [0:1]={{1,2},{3,4}}, and encodes each element with the element type's
// text decoder. Quoted elements may contain backslash escapes; an unquoted
// NULL (any case) is SQL NULL, a quoted "NULL" the four-letter string.
func (v *valueCodec) appendTextArray(dst []byte, elem uint32, delim byte, data []byte, depth int) ([]byte, error) {
	if elem == 0 {
		return dst, fmt.Errorf("%w: array element type unknown", ErrMalformedValue)
	}
	p := arrayParser{v: v, elem: elem, delim: delim, s: data, depth: depth}
	p.skipSpace()
	if p.peek() == '[' {
		// Dimension decoration for non-default lower bounds: skip it.
		for !p.done() && p.s[p.pos] != '=' {
			p.pos++
		}
		if !p.accept('=') {
			return dst, p.errorf("unterminated dimension decoration")
		}
		p.skipSpace()
	}
	dst, err := p.level(dst, 1)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if !p.done() {
		return dst, p.errorf("trailing data")
	}
	return dst, nil
}

type arrayParser struct {
	v     *valueCodec
	elem  uint32
	delim byte
	s     []byte
	pos   int
	depth int
}

func (p *arrayParser) done() bool { return p.pos >= len(p.s) }

func (p *arrayParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

func (p *arrayParser) accept(b byte) bool {
	if !p.done() && p.s[p.pos] == b {
		p.pos++
		return true
	}
	return false
}

// isArraySpace is array_isspace: the whitespace array_in skips.
func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) skipSpace() {
	for !p.done() && isArraySpace(p.s[p.pos]) {
		p.pos++
	}
}

func (p *arrayParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: array at byte %d: %s", ErrMalformedValue, p.pos, fmt.Sprintf(format, args...))
}

// level parses one brace-enclosed dimension starting at '{'.
func (p *arrayParser) level(dst []byte, dim int) ([]byte, error) {
	if dim > maxArrayDims {
		return dst, p.errorf("more than %d dimensions", maxArrayDims)
	}
	if !p.accept('{') {
		return dst, p.errorf("expected '{'")
	}
	dst = append(dst, '[')
	p.skipSpace()
	if p.accept('}') {
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var err error
		if p.peek() == '{' {
			dst, err = p.level(dst, dim+1)
		} else {
			dst, err = p.element(dst)
		}
		if err != nil {
			return dst, err
		}
		p.skipSpace()
		switch {
		case p.accept('}'):
			return append(dst, ']'), nil
		case p.accept(p.delim):
		default:
			return dst, p.errorf("expected %q or '}'", p.delim)
		}
	}
}

// element parses one scalar element and appends its encoding.
func (p *arrayParser) element(dst []byte) ([]byte, error) {
	buf := p.v.elems[p.depth][:0]
	quoted := p.accept('"')
	escaped := false
	start := p.pos
	lastSignificant := p.pos // end of the element without trailing spaces
	for {
		if p.done() {
			return dst, p.errorf("unterminated element")
		}
		c := p.s[p.pos]
		if quoted && c == '"' {
			break
		}
		if !quoted && (c == p.delim || c == '}') {
			break
		}
		if !quoted && (c == '{' || c == '"') {
			return dst, p.errorf("unexpected quote or brace")
		}
		if c == '\\' {
			if !escaped {
				buf = append(buf, p.s[start:p.pos]...)
				escaped = true
			}
			p.pos++
			if p.done() {
				return dst, p.errorf("unterminated escape")
			}
			buf = append(buf, p.s[p.pos])
			p.pos++
			lastSignificant = p.pos
			continue
		}
		if escaped {
			buf = append(buf, c)
		}
		p.pos++
		if quoted || !isArraySpace(c) {
			lastSignificant = p.pos
		}
	}
	var text []byte
	switch {
	case escaped && !quoted:
		// Trim the trailing spaces appended after the last significant
		// byte; escaped spaces count as significant.
		text = buf[:len(buf)-(p.pos-lastSignificant)]
	case escaped:
		text = buf
	case quoted:
		text = p.s[start:p.pos]
	default:
		text = p.s[start:lastSignificant]
	}
	p.v.elems[p.depth] = buf
	if quoted {
		p.pos++ // closing quote
	}
	if len(text) == 0 && !quoted {
		return dst, p.errorf("empty unquoted element")
	}
	if !quoted && !escaped && len(text) == 4 &&
		text[0]|0x20 == 'n' && text[1]|0x20 == 'u' && text[2]|0x20 == 'l' && text[3]|0x20 == 'l' {
		return append(dst, "null"...), nil
	}
	return p.v.appendDatum(dst, p.elem, DatumText, text, p.depth+1)
}

// appendBinaryArray reads array_send:
//
//	int32 ndim, int32 hasnull, uint32 elemtype,
//	ndim × (int32 length, int32 lower bound),
//	elements × (int32 length or -1 for NULL, bytes)
//
// The element type comes from the payload, which is authoritative and
// lets arrays of types outside the builtin table decode without Types.
func (v *valueCodec) appendBinaryArray(dst, data []byte, depth int) ([]byte, error) {
	if len(data) < 12 {
		return dst, fmt.Errorf("%w: array header of %d bytes", ErrMalformedValue, len(data))
	}
	ndim := int(int32(binary.BigEndian.Uint32(data)))
	elem := binary.BigEndian.Uint32(data[8:])
	if ndim < 0 || ndim > maxArrayDims {
		return dst, fmt.Errorf("%w: array of %d dimensions", ErrMalformedValue, ndim)
	}
	if ndim == 0 {
		return append(dst, "[]"...), nil
	}
	rest := data[12:]
	if len(rest) < 8*ndim {
		return dst, fmt.Errorf("%w: array dimensions truncated", ErrMalformedValue)
	}
	r := binaryArrayReader{v: v, elem: elem, ndim: ndim, depth: depth}
	total := 1
	for i := range ndim {
		n := int(int32(binary.BigEndian.Uint32(rest[8*i:])))
		// Each element takes at least its 4-byte length word, which bounds
		// the product by the payload and keeps it from overflowing.
		if n < 0 || n > len(rest)/4 {
			return dst, fmt.Errorf("%w: array dimension of %d elements", ErrMalformedValue, n)
		}
		r.dims[i] = n
		total *= n
		if total > len(rest)/4 {
			return dst, fmt.Errorf("%w: array of %d elements in %d bytes", ErrMalformedValue, total, len(rest))
		}
	}
	r.rest = rest[8*ndim:]
	dst, err := r.level(dst, 0)
	if err != nil {
		return dst, err
	}
	if len(r.rest) != 0 {
		return dst, fmt.Errorf("%w: %d bytes after the last array element", ErrMalformedValue, len(r.rest))
	}
	return dst, nil
}

type binaryArrayReader struct {
	v     *valueCodec
	elem  uint32
	dims  [maxArrayDims]int
	ndim  int
	rest  []byte
	depth int
}

func (r *binaryArrayReader) level(dst []byte, dim int) ([]byte, error) {
	dst = append(dst, '[')
	for i := range r.dims[dim] {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dim+1 < r.ndim {
			dst, err = r.level(dst, dim+1)
		} else {
			dst, err = r.element(dst)
		}
		if err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func (r *binaryArrayReader) element(dst []byte) ([]byte, error) {
	if len(r.rest) < 4 {
		return dst, fmt.Errorf("%w: array element truncated", ErrMalformedValue)
	}
	n := int(int32(binary.BigEndian.Uint32(r.rest)))
	r.rest = r.rest[4:]
	if n == -1 {
		return append(dst, "null"...), nil
	}
	if n < 0 || n > len(r.rest) {
		return dst, fmt.Errorf("%w: array element of %d bytes", ErrMalformedValue, n)
	}
	b := r.rest[:n]
	r.rest = r.rest[n:]
	return r.v.appendDatum(dst, r.elem, DatumBinary, b, r.depth+1)
}
