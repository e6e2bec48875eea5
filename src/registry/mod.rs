//! Registry client: references, auth, shallow pull and push.
