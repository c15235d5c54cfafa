package armtemplate

import (
	"fmt"
	"strconv"
	"strings"
)

// The expression language (MicrosoftDocs/azure-docs template-expressions.md):
//
//	expression := primary { "." identifier | "[" expression "]" }
//	primary    := string | integer | identifier "(" [ expression { "," expression } ] ")"
//	string     := "'" { char | "''" } "'"
//	integer    := [ "-" ] digit { digit }
//
// Function names are case-insensitive. A JSON string is an expression when
// it starts with "[" and ends with "]"; "[[" at the start escapes a literal
// "[" (template-expressions.md, "Escape characters").

type expr interface{ isExpr() }

type (
	strLit struct{ val string }
	intLit struct{ val int64 }
	call   struct {
		name string
		args []expr
	}
	propAccess struct {
		target expr
		name   string
	}
	indexAccess struct {
		target, index expr
	}
)

func (strLit) isExpr()      {}
func (intLit) isExpr()      {}
func (call) isExpr()        {}
func (propAccess) isExpr()  {}
func (indexAccess) isExpr() {}

// splitExpression tells whether the JSON string s is an expression and
// returns its text between the brackets; for a string that is not one it
// returns the literal value, with a leading "[[" reduced to "[".
func splitExpression(s string) (text string, isExpr bool) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if s[1] == '[' {
			return s[1:], false
		}
		return s[1 : len(s)-1], true
	}
	return s, false
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokInt
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokDot
)

// tokenNames are the token names ARM prints in parse errors ("expected
// token 'RightParenthesis' and actual 'EndOfData'"; the two names quoted
// there are confirmed, the others follow the same pattern).
var tokenNames = map[tokKind]string{
	tokEOF:      "EndOfData",
	tokIdent:    "Identifier",
	tokString:   "Literal",
	tokInt:      "Integer",
	tokLParen:   "LeftParenthesis",
	tokRParen:   "RightParenthesis",
	tokLBracket: "LeftSquareBracket",
	tokRBracket: "RightSquareBracket",
	tokComma:    "Comma",
	tokDot:      "Dot",
}

type token struct {
	kind tokKind
	text string
	num  int64
}

type parser struct {
	src  string
	toks []token
	pos  int
}

// maxExprDepth bounds nesting of calls and the length of accessor chains
// (".a", "[i]"), which the evaluator walks recursively too.
const maxExprDepth = 256

// parseExpression parses the text of one expression (without the brackets).
// Errors read "Unable to parse language expression '<text>': expected
// token 'EndOfData' and actual 'RightParenthesis'.". That form is quoted
// as ARM's (InvalidTemplate, "Unable to parse language expression …
// expected token 'EndOfData' and actual 'RightParenthesis'") in public
// notes found by exact-string search of GitHub files, whose repositories
// the search tool did not name; no citable issue was found. The wording
// of the other parse failures (unterminated string, bad character) is
// ours.
func parseExpression(src string) (expr, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 1 {
		return nil, p.errorf("the expression is empty")
	}
	e, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if err := p.expect(tokEOF); err != nil {
		return nil, err
	}
	return e, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return exprErrorf("Unable to parse language expression '%s': %s.", p.src, strings.TrimSuffix(fmt.Sprintf(format, args...), "."))
}

// punctuation are the one-character tokens.
var punctuation = [256]tokKind{'(': tokLParen, ')': tokRParen, '[': tokLBracket, ']': tokRBracket, ',': tokComma, '.': tokDot}

func (p *parser) lex() error {
	s := p.src
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case punctuation[c] != 0:
			p.toks = append(p.toks, token{kind: punctuation[c]})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return p.errorf("the string literal at position '%d' is not terminated", i)
			}
			p.toks = append(p.toks, token{kind: tokString, text: b.String()})
			i = j
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n, err := strconv.ParseInt(s[i:j], 10, 64)
			if err != nil {
				return p.errorf("the integer literal '%s' at position '%d' is not valid", s[i:j], i)
			}
			p.toks = append(p.toks, token{kind: tokInt, num: n, text: s[i:j]})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			p.toks = append(p.toks, token{kind: tokIdent, text: s[i:j]})
			i = j
		default:
			return p.errorf("the character '%c' at position '%d' is not expected", c, i)
		}
	}
	p.toks = append(p.toks, token{kind: tokEOF})
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) expect(k tokKind) error {
	t := p.peek()
	if t.kind != k {
		return p.errorf("expected token '%s' and actual '%s'", tokenNames[k], tokenNames[t.kind])
	}
	p.next()
	return nil
}

func (p *parser) expression(depth int) (expr, error) {
	if depth > maxExprDepth {
		return nil, p.errorf("the expression is nested too deeply")
	}
	var e expr
	t := p.next()
	switch t.kind {
	case tokString:
		e = strLit{val: t.text}
	case tokInt:
		e = intLit{val: t.num}
	case tokIdent:
		if err := p.expect(tokLParen); err != nil {
			return nil, err
		}
		c := call{name: t.text}
		if p.peek().kind == tokEOF {
			return nil, p.errorf("expected token '%s' and actual '%s'", tokenNames[tokRParen], tokenNames[tokEOF])
		}
		if p.peek().kind != tokRParen {
			for {
				a, err := p.expression(depth + 1)
				if err != nil {
					return nil, err
				}
				c.args = append(c.args, a)
				if p.peek().kind != tokComma {
					break
				}
				p.next()
			}
		}
		if err := p.expect(tokRParen); err != nil {
			return nil, err
		}
		e = c
	default:
		return nil, p.errorf("expected token '%s' and actual '%s'", tokenNames[tokIdent], tokenNames[t.kind])
	}
	for {
		switch p.peek().kind {
		case tokDot, tokLBracket:
			depth++
			if depth > maxExprDepth {
				return nil, p.errorf("the expression is nested too deeply")
			}
		}
		switch p.peek().kind {
		case tokDot:
			p.next()
			t := p.next()
			if t.kind != tokIdent {
				return nil, p.errorf("expected token '%s' and actual '%s'", tokenNames[tokIdent], tokenNames[t.kind])
			}
			e = propAccess{target: e, name: t.text}
		case tokLBracket:
			p.next()
			idx, err := p.expression(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := p.expect(tokRBracket); err != nil {
				return nil, err
			}
			e = indexAccess{target: e, index: idx}
		default:
			return e, nil
		}
	}
}
