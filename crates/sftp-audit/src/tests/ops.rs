//! Path operations and their statuses, extensions, VERSION, path
//! sanitising and the JSON shape of events.

use super::*;
use crate::AttrsSummary;

const H: &[u8] = b"\0\0\0\x07";

#[test]
fn path_operations_become_events_with_their_status() {
    let mut s = Script::default();
    s.hello();
    s.c(req(kind::RENAME, 1).str(b"a").str(b"b").packet())
        .s(ok(1));
    s.c(ext(2, "posix-rename@openssh.com")
        .str(b"b")
        .str(b"c")
        .packet())
        .s(ok(2));
    s.c(path_req(kind::REMOVE, 3, b"c"))
        .s(status(3, 3, "Permission denied"));
    s.c(req(kind::MKDIR, 4).str(b"d").no_attrs().packet())
        .s(ok(4));
    s.c(path_req(kind::RMDIR, 5, b"d"))
        .s(status(5, 2, "No such file"));
    // OpenSSH's SYMLINK: target first, then the new link.
    s.c(req(kind::SYMLINK, 6)
        .str(b"/etc/passwd")
        .str(b"ln")
        .packet())
        .s(ok(6));
    s.c(ext(7, "hardlink@openssh.com").str(b"x").str(b"y").packet())
        .s(status(7, 4, ""));
    let ev = without_version(s.run());
    let denied = Status::new(3, Some("Permission denied".into()));
    assert_eq!(
        ev,
        vec![
            SftpEvent::Rename {
                from: "a".into(),
                to: "b".into(),
                posix: false,
                status: st(0)
            },
            SftpEvent::Rename {
                from: "b".into(),
                to: "c".into(),
                posix: true,
                status: st(0)
            },
            SftpEvent::Remove {
                path: "c".into(),
                status: denied
            },
            SftpEvent::Mkdir {
                path: "d".into(),
                status: st(0)
            },
            SftpEvent::Rmdir {
                path: "d".into(),
                status: Status::new(2, Some("No such file".into())),
            },
            SftpEvent::Symlink {
                link: "ln".into(),
                target: "/etc/passwd".into(),
                status: st(0)
            },
            SftpEvent::Hardlink {
                from: "x".into(),
                to: "y".into(),
                status: st(4)
            },
        ]
    );
    assert_eq!(st(4).name, "failure");
    assert_eq!(st(77).name, "code_77");
}

#[test]
fn setstat_fsetstat_lsetstat() {
    let mut s = Script::default();
    s.hello();
    // SETSTAT size + permissions.
    s.c(req(kind::SETSTAT, 1)
        .str(b"f")
        .u32(0x1 | 0x4)
        .u64(10)
        .u32(0o644)
        .packet())
        .s(ok(1));
    // FSETSTAT uid/gid + times on an open handle.
    s.c(open(2, b"/h", WRITE)).s(handle(2, H));
    s.c(req(kind::FSETSTAT, 3)
        .str(H)
        .u32(0x2 | 0x8)
        .u32(1000)
        .u32(100)
        .u32(5)
        .u32(6)
        .packet());
    s.s(status(3, 3, ""));
    // lsetstat with an extended pair.
    let b = ext(4, "lsetstat@openssh.com")
        .str(b"l")
        .u32(0x8000_0000)
        .u32(1);
    s.c(b.str(b"k").str(b"v").packet()).s(ok(4));
    // FSETSTAT on a handle nobody opened.
    s.c(req(kind::FSETSTAT, 5)
        .str(b"nope")
        .u32(0x4)
        .u32(0o4755)
        .packet())
        .s(ok(5));
    let ev = without_version(s.run());
    let attrs = |f: fn(&mut AttrsSummary)| {
        let mut a = AttrsSummary::default();
        f(&mut a);
        a
    };
    assert_eq!(
        ev[0],
        SftpEvent::Setstat {
            path: Some("f".into()),
            attrs: attrs(|a| {
                a.size = Some(10);
                a.permissions = Some("0644".into());
            }),
            status: st(0),
        }
    );
    assert!(matches!(ev[1], SftpEvent::Open { .. }));
    assert_eq!(
        ev[2],
        SftpEvent::Setstat {
            path: Some("/h".into()),
            attrs: attrs(|a| {
                a.uid = Some(1000);
                a.gid = Some(100);
                a.atime = Some(5);
                a.mtime = Some(6);
            }),
            status: st(3),
        }
    );
    assert_eq!(
        ev[3],
        SftpEvent::Setstat {
            path: Some("l".into()),
            attrs: attrs(|a| a.extended = 1),
            status: st(0)
        }
    );
    let SftpEvent::Setstat {
        path: None, attrs, ..
    } = &ev[4]
    else {
        panic!("{:?}", ev[4])
    };
    assert_eq!(attrs.permissions.as_deref(), Some("4755"));
}

#[test]
fn open_errors_opendir_and_extensions() {
    let mut s = Script::default();
    s.hello();
    s.c(open(1, b"/root/x", READ))
        .s(status(1, 3, "Permission denied"));
    s.c(path_req(kind::OPENDIR, 2, b"/tmp")).s(handle(2, b"D"));
    s.c(req(kind::READDIR, 3).str(b"D").packet())
        .s(req(kind::NAME, 3).u32(0).packet());
    s.c(close(4, b"D")).s(ok(4));
    s.c(path_req(kind::STAT, 5, b"/tmp"))
        .s(req(kind::ATTRS, 5).no_attrs().packet());
    s.c(ext(6, "statvfs@openssh.com").str(b"/").packet())
        .s(req(kind::EXTENDED_REPLY, 6).packet());
    s.c(ext(7, "evil@example.com").str(b"arg").packet())
        .s(req(kind::EXTENDED_REPLY, 7).packet());
    s.c(ext(8, "other@example.com").packet())
        .s(status(8, 8, "Unsupported"));
    // copy-data between two open files.
    s.c(open(9, b"src", READ)).s(handle(9, b"S"));
    s.c(open(10, b"dst", WRITE | CREAT)).s(handle(10, b"T"));
    s.c(write(11, b"T", 0, b"xy")).s(ok(11));
    let cd = ext(12, "copy-data")
        .str(b"S")
        .u64(0)
        .u64(0)
        .str(b"T")
        .u64(2);
    s.c(cd.packet()).s(ok(12));
    let ev = without_version(s.run());
    assert_eq!(
        ev[0],
        SftpEvent::Open {
            path: "/root/x".into(),
            flags: vec!["read".into()],
            status: Status::new(3, Some("Permission denied".into())),
        }
    );
    assert_eq!(
        ev[1],
        SftpEvent::OpenDir {
            path: "/tmp".into(),
            status: st(0)
        }
    );
    // Closing a directory, STAT, READDIR and statvfs make no event.
    assert_eq!(
        ev[2],
        SftpEvent::Extended {
            name: "evil@example.com".into(),
            status: st(0)
        }
    );
    assert_eq!(
        ev[3],
        SftpEvent::Extended {
            name: "other@example.com".into(),
            status: Status::new(8, Some("Unsupported".into())),
        }
    );
    assert_eq!(
        ev[6],
        SftpEvent::CopyData {
            from_path: Some("src".into()),
            to_path: Some("dst".into()),
            from_offset: 0,
            to_offset: 2,
            length: 0,
            status: st(0),
        }
    );
    // The destination changed behind the channel's back: no written digest.
    let c = closes(&ev);
    let SftpEvent::Close {
        path,
        written_bytes,
        written_sha256,
        implicit: true,
        ..
    } = c[1]
    else {
        panic!("{:?}", c[1])
    };
    assert_eq!(
        (path.as_str(), *written_bytes, written_sha256.clone()),
        ("dst", 2, None)
    );
    assert_eq!(ev.len(), 9);
}

#[test]
fn version_event_and_unsupported_versions() {
    let mut a = SftpAudit::new();
    assert!(a.client_bytes(&init()).is_empty());
    let ev = a.server_bytes(&version(
        3,
        &["posix-rename@openssh.com", "limits@openssh.com"],
    ));
    assert_eq!(
        ev,
        vec![SftpEvent::Version {
            version: 3,
            extensions: vec![
                "posix-rename@openssh.com".into(),
                "limits@openssh.com".into()
            ],
        }]
    );
    let mut a = SftpAudit::new();
    let ev = a.server_bytes(&version(6, &[]));
    assert_eq!(ev.len(), 2);
    assert!(
        matches!(&ev[1], SftpEvent::Unparseable { direction: Direction::Server, reason }
        if reason.contains("version 6"))
    );
    assert!(a.is_stopped());
}

#[test]
fn paths_are_escaped_and_bounded() {
    let mut s = Script::default();
    s.hello();
    s.c(path_req(
        kind::REMOVE,
        1,
        b"evil\x1b[2J\nname\\\xff\xe2\x80\xae",
    ))
    .s(ok(1));
    let long = vec![b'a'; 10_000];
    s.c(path_req(kind::REMOVE, 2, &long)).s(ok(2));
    let ev = without_version(s.run());
    let SftpEvent::Remove { path, .. } = &ev[0] else {
        panic!()
    };
    assert_eq!(path, "evil\\u{1b}[2J\\u{a}name\\\\\u{fffd}\\u{202e}");
    let SftpEvent::Remove { path, .. } = &ev[1] else {
        panic!()
    };
    assert!(path.starts_with("aaaa"));
    assert!(path.ends_with(crate::TRUNCATION_MARK));
    assert_eq!(
        path.len(),
        crate::MAX_PATH_BYTES + crate::TRUNCATION_MARK.len()
    );
    // Escapes count towards the bound too.
    let ctl = vec![0x01u8; 5000];
    let text = crate::events::display_path(&ctl);
    assert!(text.len() <= crate::MAX_PATH_BYTES + crate::TRUNCATION_MARK.len());
    assert!(text.starts_with("\\u{1}\\u{1}"));
}

#[test]
fn json_shape() {
    let close = SftpEvent::Close {
        path: "/srv/a".into(),
        read_bytes: 0,
        written_bytes: 3,
        read_sha256: None,
        written_sha256: Some(sha_hex(b"abc")),
        implicit: false,
        status: Some(Status::ok()),
    };
    let v = serde_json::to_value(&close).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "op": "close", "path": "/srv/a", "read_bytes": 0, "written_bytes": 3,
            "read_sha256": null,
            "written_sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "implicit": false, "status": {"code": 0, "name": "ok"}
        })
    );
    let rename = SftpEvent::Rename {
        from: "a".into(),
        to: "b".into(),
        posix: true,
        status: Status::new(4, Some("Failure".into())),
    };
    assert_eq!(
        serde_json::to_string(&rename).unwrap(),
        r#"{"op":"rename","from":"a","to":"b","posix":true,"status":{"code":4,"name":"failure","message":"Failure"}}"#
    );
    let unp = SftpEvent::Unparseable {
        direction: Direction::Client,
        reason: "x".into(),
    };
    assert_eq!(
        serde_json::to_string(&unp).unwrap(),
        r#"{"op":"unparseable","direction":"client","reason":"x"}"#
    );
    let set = SftpEvent::Setstat {
        path: Some("p".into()),
        attrs: AttrsSummary {
            permissions: Some("0600".into()),
            ..AttrsSummary::default()
        },
        status: Status::ok(),
    };
    assert_eq!(
        serde_json::to_string(&set).unwrap(),
        r#"{"op":"setstat","path":"p","attrs":{"permissions":"0600"},"status":{"code":0,"name":"ok"}}"#
    );
    let od = SftpEvent::OpenDir {
        path: "/".into(),
        status: Status::ok(),
    };
    assert_eq!(serde_json::to_value(&od).unwrap()["op"], "open_dir");
}
