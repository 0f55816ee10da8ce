//! Integration tests of the HTTP fetcher against the fixture site.
