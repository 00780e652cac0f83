package manifest

// OracleDecode gives the external tests the reference decoder.
var OracleDecode = oracleDecode
