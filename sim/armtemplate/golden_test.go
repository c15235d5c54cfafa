package armtemplate

// murmurTailGolden pins uniqueString for every tail length (0..7) and for one
// and two whole blocks; computed by this port (see TestMurmurTails).
var murmurTailGolden = map[string]string{
	"":          "aaaaaaaaaaaaa",
	"a":         "eveiun73364hy",
	"ab":        "twldla3s3qb3q",
	"abc":       "cgtzqvhu4i23s",
	"abcd":      "2vkzoblxv4fya",
	"abcde":     "5a3qs7ylzrs64",
	"abcdef":    "rmkkamh3kazwq",
	"abcdefg":   "logmp4qgzfm46",
	"abcdefgh":  "q7ncvd5x2rx4e",
	"abcdefghi": "zignisl6otg3u",
}
