//! Static OpenAPI schema generation from predictor source.
