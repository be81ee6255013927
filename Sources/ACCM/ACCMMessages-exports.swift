// The stage messages, options and errors live in ACCMMessages (no weights, no BLAS), so that the cluster's
// coordinator and the gateway can use them; everything that imports ACCM sees them as before.

@_exported import ACCMMessages
