//! Which request is which: cloud-hypervisor's paths and verbs under `/api/v1/`, and the 4xx
//! (or 501 for cloud-hypervisor endpoints this VMM does not have) for everything else.

use super::http::{Request, Response};
use super::types::{CoredumpData, ResizeData};
use super::Action;
use std::path::PathBuf;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET vmm.ping`: the server answers it itself.
    Ping,
    /// Everything the machine answers.
    Machine(Action),
}

/// The API's prefix.
pub const PREFIX: &str = "/api/v1/";

/// (endpoint, method) of every path served.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("vmm.ping", "GET"),
    ("vmm.shutdown", "PUT"),
    ("vm.info", "GET"),
    ("vm.counters", "GET"),
    ("vm.fadump", "GET"),
    ("vm.shutdown", "PUT"),
    ("vm.reboot", "PUT"),
    ("vm.power-button", "PUT"),
    ("vm.nmi", "PUT"),
    ("vm.coredump", "PUT"),
    ("vm.resize", "PUT"),
];

/// cloud-hypervisor endpoints with no equivalent here (answered 501, not 404).
const NOT_HERE: &[&str] = &[
    "vm.create",
    "vm.boot",
    "vm.delete",
    "vm.pause",
    "vm.resume",
    "vm.snapshot",
    "vm.restore",
    "vm.add-device",
    "vm.add-disk",
    "vm.add-fs",
    "vm.add-net",
    "vm.add-pmem",
    "vm.add-vdpa",
    "vm.add-vsock",
    "vm.add-user-device",
    "vm.remove-device",
    "vm.resize-zone",
    "vm.receive-migration",
    "vm.send-migration",
];

fn parse_body<T: serde::de::DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| Response::error(400, format!("{endpoint}: invalid JSON body: {e}")))
}

fn coredump(body: &[u8]) -> Result<Action, Response> {
    let d: CoredumpData = parse_body("vm.coredump", body)?;
    let bad = |why: &str| {
        Response::error(
            400,
            format!(
                "vm.coredump: destination_url {:?} {why} (expected file:///absolute/path)",
                d.destination_url
            ),
        )
    };
    let Some(path) = d.destination_url.strip_prefix("file://") else {
        return Err(bad("is not a file:// URL"));
    };
    if !path.starts_with('/') || path.len() < 2 {
        return Err(bad("has no absolute path"));
    }
    if path.contains('\0') {
        return Err(bad("holds a NUL byte"));
    }
    Ok(Action::Coredump {
        path: PathBuf::from(path),
    })
}

fn resize(body: &[u8]) -> Result<Action, Response> {
    let d: ResizeData = parse_body("vm.resize", body)?;
    if d.desired_vcpus.is_some() || d.desired_balloon.is_some() {
        return Err(Response::error(
            400,
            "vm.resize: only desired_ram is supported (no vCPU hotplug, no balloon)",
        ));
    }
    match d.desired_ram {
        Some(desired_ram) => Ok(Action::Resize { desired_ram }),
        None => Err(Response::error(400, "vm.resize: desired_ram is required")),
    }
}

/// The route of `req`, or the response that refuses it.
pub fn route(req: &Request) -> Result<Route, Response> {
    let Some(endpoint) = req.path.strip_prefix(PREFIX) else {
        return Err(Response::error(
            404,
            format!("no such path {:?} (the API is under {PREFIX})", req.path),
        ));
    };
    let Some(&(_, method)) = ENDPOINTS.iter().find(|(e, _)| *e == endpoint) else {
        if NOT_HERE.contains(&endpoint) {
            return Err(Response::error(
                501,
                format!("{endpoint} is a cloud-hypervisor endpoint ppc-vmm does not have"),
            ));
        }
        return Err(Response::error(
            404,
            format!("no such endpoint {endpoint:?}"),
        ));
    };
    if req.method != method {
        let mut r = Response::error(
            405,
            format!("{endpoint} takes {method}, not {}", req.method),
        );
        r.headers.push(("Allow", method.to_string()));
        return Err(r);
    }
    let action = match endpoint {
        "vmm.ping" => return Ok(Route::Ping),
        "vm.info" => Action::Info,
        "vm.counters" => Action::Counters,
        "vm.fadump" => Action::Fadump,
        "vm.shutdown" | "vmm.shutdown" => Action::Shutdown,
        "vm.reboot" => Action::Reboot,
        "vm.power-button" => Action::PowerButton,
        "vm.nmi" => Action::Nmi,
        "vm.coredump" => coredump(&req.body)?,
        "vm.resize" => resize(&req.body)?,
        other => return Err(Response::error(500, format!("{other}: no route"))),
    };
    Ok(Route::Machine(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, path: &str, body: &str) -> Result<Route, u16> {
        route(&Request {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
        })
        .map_err(|e| e.status)
    }

    #[test]
    fn every_endpoint_routes_with_its_method_and_no_other() {
        for (e, m) in ENDPOINTS {
            let path = format!("{PREFIX}{e}");
            let body = match *e {
                "vm.coredump" => r#"{"destination_url":"file:///tmp/core"}"#,
                "vm.resize" => r#"{"desired_ram":1073741824}"#,
                _ => "",
            };
            assert!(r(m, &path, body).is_ok(), "{m} {e}");
            let other = if *m == "GET" { "PUT" } else { "GET" };
            assert_eq!(r(other, &path, body), Err(405), "{other} {e}");
            assert_eq!(r("DELETE", &path, body), Err(405));
        }
        assert_eq!(r("GET", "/api/v1/vmm.ping", ""), Ok(Route::Ping));
        assert_eq!(
            r("PUT", "/api/v1/vm.nmi", ""),
            Ok(Route::Machine(Action::Nmi))
        );
    }

    #[test]
    fn unknown_paths_are_404_and_foreign_endpoints_501() {
        assert_eq!(r("GET", "/", ""), Err(404));
        assert_eq!(r("GET", "/api/v1/", ""), Err(404));
        assert_eq!(r("GET", "/api/v1/vm.infox", ""), Err(404));
        assert_eq!(r("GET", "/api/v2/vm.info", ""), Err(404));
        assert_eq!(r("GET", "/api/v1/../v1/vm.info", ""), Err(404));
        assert_eq!(r("PUT", "/api/v1/vm.pause", ""), Err(501));
    }

    #[test]
    fn bodies_are_validated() {
        let cd = |b: &str| r("PUT", "/api/v1/vm.coredump", b);
        assert_eq!(
            cd(r#"{"destination_url":"file:///var/tmp/x.core"}"#),
            Ok(Route::Machine(Action::Coredump {
                path: "/var/tmp/x.core".into()
            }))
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"destination_url":"http://x/y"}"#,
            r#"{"destination_url":"file://relative"}"#,
            r#"{"destination_url":"file:///"}"#,
            r#"{"destination_url":"file:///a\u0000b"}"#,
            r#"{"destination_url":"file:///a","extra":1}"#,
        ] {
            assert_eq!(cd(bad), Err(400), "{bad}");
        }
        let rs = |b: &str| r("PUT", "/api/v1/vm.resize", b);
        assert_eq!(
            rs(r#"{"desired_ram":2147483648}"#),
            Ok(Route::Machine(Action::Resize {
                desired_ram: 2 << 30
            }))
        );
        for bad in [
            "{}",
            r#"{"desired_vcpus":2}"#,
            r#"{"desired_ram":-1}"#,
            r#"{"desired_ram":"1G"}"#,
        ] {
            assert_eq!(rs(bad), Err(400), "{bad}");
        }
    }
}
