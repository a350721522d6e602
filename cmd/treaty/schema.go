package main

import (
	"encoding/json"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/node"
)

// readSchema reads the JSON Schema file given to flag (--input-schema or
// --output-schema) for the capability key field, and refuses it as a usage
// error unless it compiles as the node would compile it at load: a bad file
// never reaches treaty.yaml. An empty file name is no schema.
func readSchema(flag, file, field string) (map[string]any, error) {
	if file == "" {
		return nil, nil
	}
	b, err := readFlagFile(flag, file, config.MaxFileBytes) // it ends up in treaty.yaml
	if err != nil {
		return nil, err
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil || s == nil {
		return nil, usagef("%s %s: want a JSON object (a JSON Schema)", flag, file)
	}
	if err := node.CheckSchema(field, s); err != nil {
		return nil, usagef("%s %s: %v", flag, file, err)
	}
	return s, nil
}
