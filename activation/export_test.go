package activation

// ReadPrevious exposes what the next activation reads of the last one.
var ReadPrevious = readPrevious
