package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// recordsBucket holds a segment's records: key = 8-byte big-endian ID (so
// bbolt's key order is ID order), value = encoded record.
var recordsBucket = []byte("records")

// A record value is:
//
//	[0]    format version (recordVersion)
//	[1:5]  CRC-32C (Castagnoli) of data, little-endian
//	[5:]   data
const (
	recordVersion   = 1
	recordHeaderLen = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeKey(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, id)
}

func decodeKey(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func appendRecord(dst, data []byte) []byte {
	dst = append(dst, recordVersion)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(data, castagnoli))
	return append(dst, data...)
}

// decodeRecord returns the data of a record value, or false when the value is
// not a record of a known version or its checksum fails. data aliases v.
func decodeRecord(v []byte) (data []byte, ok bool) {
	if len(v) < recordHeaderLen || v[0] != recordVersion {
		return nil, false
	}
	data = v[recordHeaderLen:]
	if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(v[1:5]) {
		return nil, false
	}
	return data, true
}

// recordShapeOK is the cheap check Open applies to every value without reading
// the payload: a known version and room for the header. The checksum is
// verified when the record is read (Oldest).
func recordShapeOK(v []byte) bool {
	return len(v) >= recordHeaderLen && v[0] == recordVersion
}
