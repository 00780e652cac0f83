package activation

// ReadPrevious exposes what the next activation reads of the last one.
var ReadPrevious = readPrevious

// WriteState exposes how the state is recorded, for tests that craft one.
var WriteState = writeState
