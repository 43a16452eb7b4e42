package cairn

// JobTag exposes jobTag to the external tests.
var JobTag = jobTag
