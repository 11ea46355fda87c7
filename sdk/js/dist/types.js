// The types of @discovery/client: options, the get-endpoint answer and the
// events a Connection emits. Type-only: nothing here exists at run time, so
// dist/index.js stays one self-contained file.
export {};
