//! Integration tests of `wharf-server` over real loopback sockets with raw HTTP, mirroring the
//! checks of the OCI conformance suite (OCI-CONFORMANCE.md), plus restart and two-process
//! tests.

#![allow(clippy::many_single_char_names, clippy::cast_possible_truncation, clippy::float_cmp)]

mod access;
mod binary;
mod common;
mod conformance;
mod edges;
mod faults;
mod hostile;
mod lifecycle;
mod limits;
mod mirror;
mod model;
mod oidc;
mod openapi;
mod packages;
mod persistence;
mod robots;
mod trust;
mod wasm;
mod webhooks;
mod zerocopy;
