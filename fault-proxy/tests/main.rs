//! The fault proxy's integration tests in one binary, one module per area. They need no
//! runner: the proxy runs in-process (`ProxyServer`), real servers (an echo server,
//! redis-server) are started by the tests themselves.

mod support;

mod dbproto;
mod proxy;
