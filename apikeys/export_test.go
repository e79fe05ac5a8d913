package apikeys

// crcFor is the checksum a key body needs (for tests that build keys by
// hand).
func crcFor(body string) string { return checksum(body) }

// CRC is crcFor, for the external tests.
var CRC = crcFor
