package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/treaty-dev/treaty/internal/jsonenc"
)

// appendJSON appends a as json.Marshal writes it (callanswer_test.go holds
// the two equal over random and edge values), without reflection: every
// local call's answer is one, and encoding/json's reflective walk over the
// receipt, and its second pass to check and compact the output, were most
// of the local API's JSON cost. An output that is not valid JSON, or an
// elapsed time that is not finite, is an error, as for json.Marshal.
func (a callAnswer) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"output":`...)
	b, err := jsonenc.AppendRaw(b, a.Output)
	if err != nil {
		return b, err
	}
	r := a.Receipt
	b = append(b, `,"receipt":{"version":`...)
	b = jsonenc.AppendString(b, r.Version)
	b = append(b, `,"caller":`...)
	b = jsonenc.AppendString(b, r.Caller)
	b = append(b, `,"callee":`...)
	b = jsonenc.AppendString(b, r.Callee)
	b = append(b, `,"request_base":`...)
	b = jsonenc.AppendString(b, r.RequestBase)
	b = append(b, `,"request_signature":`...)
	b = jsonenc.AppendString(b, r.RequestSignature)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"content_digest":`...)
	b = jsonenc.AppendString(b, r.ContentDigest)
	b = append(b, `,"signature_input":`...)
	b = jsonenc.AppendString(b, r.SignatureInput)
	b = append(b, `,"signature":`...)
	b = jsonenc.AppendString(b, r.Signature)
	b = append(b, `},"elapsed_ms":`...)
	b, ok := jsonenc.AppendFloat64(b, a.ElapsedMS)
	if !ok {
		return b, errNotFinite
	}
	return append(b, '}'), nil
}

// errNotFinite is json.Marshal's refusal of NaN and the infinities.
var errNotFinite = errors.New("elapsed_ms is not a finite number")

// writeCallAnswer is writeJSON for a call's answer, encoded by appendJSON.
// Like writeJSON after an encoding error, it writes the status and no body
// when a cannot be encoded.
func writeCallAnswer(w http.ResponseWriter, a callAnswer) {
	r := a.Receipt
	size := 256 + len(a.Output) + len(r.Version) + len(r.Caller) + len(r.Callee) + len(r.RequestBase) +
		len(r.RequestSignature) + len(r.ContentDigest) + len(r.SignatureInput) + len(r.Signature)
	b, err := a.appendJSON(make([]byte, 0, size))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if err != nil {
		return
	}
	w.Write(append(b, '\n')) // json.Encoder ends each value with a newline
}
