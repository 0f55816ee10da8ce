//! Origins (scheme, host, port): the boundary a task's headers and cookies never cross.

use url::Url;

/// Whether two URLs share an origin: scheme, host and port, where a default port written
/// out (`http://h:80`) and left implicit (`http://h`) are the same port. `https://h` and
/// `http://h` are different origins (a downgrade). Compared without allocating, as it runs
/// on every redirect hop.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}
