package chat

// DepartGrace is departGrace, for the external tests.
const DepartGrace = departGrace
