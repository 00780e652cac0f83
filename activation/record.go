package activation

import (
	"encoding/binary"
	"errors"

	"github.com/secretd/secretd/identity"
)

// The compact record is what the next activation needs of the last one, in a binary form it
// decodes in a fraction of a millisecond: on every boot and switch, decoding state.json for a
// thousand outputs would cost milliseconds. It is written beside state.json, which stays the
// record operators and `secretd status` read; a record that does not decode is ignored, and
// state.json is read instead.
const recordMagic = "secretd-record-1\n"

// encodeRecord keeps of st what readPrevious callers use: the generation, the identities used,
// and per output its name, kind, path symlink, consumers, source and input stamp, and the
// identity of the file written.
func encodeRecord(st *State) []byte {
	b := make([]byte, 0, 64+256*len(st.Outputs))
	b = append(b, recordMagic...)
	b = binary.AppendVarint(b, int64(st.Version))
	b = binary.AppendVarint(b, int64(st.Generation))
	b = binary.AppendUvarint(b, uint64(len(st.Identities)))
	for _, id := range st.Identities {
		b = appendString(appendString(b, id.Path), id.Kind)
	}
	b = binary.AppendUvarint(b, uint64(len(st.Outputs)))
	for i := range st.Outputs {
		o := &st.Outputs[i]
		b = appendString(appendString(appendString(appendString(b, o.Name), o.Kind), o.Link), o.Source)
		b = binary.AppendVarint(b, int64(o.Size))
		b = binary.AppendUvarint(b, o.Ino)
		b = binary.AppendVarint(b, o.Ctime)
		b = appendStrings(appendStrings(b, o.RestartUnits), o.ReloadUnits)
		in := &o.Input
		b = appendString(b, in.File)
		b = binary.AppendUvarint(b, in.Dev)
		b = binary.AppendUvarint(b, in.Ino)
		b = binary.AppendVarint(b, in.Size)
		b = binary.AppendVarint(b, in.Mtime)
		b = binary.AppendVarint(b, in.Ctime)
		b = append(b, in.Digest[:]...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStrings(b []byte, list []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

var errBadRecord = errors.New("not a record this secretd wrote")

// decodeRecord reads what encodeRecord wrote, refusing anything else whole.
func decodeRecord(data []byte) (*State, error) {
	if len(data) < len(recordMagic) || string(data[:len(recordMagic)]) != recordMagic {
		return nil, errBadRecord
	}
	r := recordReader{data: data[len(recordMagic):]}
	st := &State{Version: int(r.varint()), Generation: int(r.varint())}
	if n := r.count(); n > 0 {
		st.Identities = make([]identity.Loaded, n)
		for i := range st.Identities {
			st.Identities[i] = identity.Loaded{Path: r.str(), Kind: r.str()}
		}
	}
	if n := r.count(); n > 0 {
		st.Outputs = make([]OutputState, n)
		for i := range st.Outputs {
			o := &st.Outputs[i]
			o.Name, o.Kind, o.Link, o.Source = r.str(), r.str(), r.str(), r.str()
			o.Size = int(r.varint())
			o.Ino = r.uvarint()
			o.Ctime = r.varint()
			o.RestartUnits, o.ReloadUnits = r.strs(), r.strs()
			in := &o.Input
			in.File = r.str()
			in.Dev, in.Ino = r.uvarint(), r.uvarint()
			in.Size, in.Mtime, in.Ctime = r.varint(), r.varint(), r.varint()
			copy(in.Digest[:], r.bytes(len(in.Digest)))
		}
	}
	if r.bad || len(r.data) != 0 {
		return nil, errBadRecord
	}
	return st, nil
}

// recordReader reads a record front to back; after the first malformed field every read gives
// a zero value and bad is set.
type recordReader struct {
	data []byte
	bad  bool
}

func (r *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.bad, r.data = true, nil
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.data)
	if n <= 0 {
		r.bad, r.data = true, nil
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *recordReader) bytes(n int) []byte {
	if n > len(r.data) {
		r.bad, r.data = true, nil
		return nil
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

// count reads a number of elements, each of which takes at least a byte, so that a corrupt
// count cannot allocate beyond the record's size.
func (r *recordReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.data)) {
		r.bad, r.data = true, nil
		return 0
	}
	return int(n)
}

func (r *recordReader) str() string { return string(r.bytes(r.count())) }

func (r *recordReader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		list[i] = r.str()
	}
	return list
}
