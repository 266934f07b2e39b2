//! POSIX access control lists (the `acl` package's semantics) on the folders of a local
//! lake, read and written as the kernel stores them: the extended attributes
//! `system.posix_acl_access` and `system.posix_acl_default`, in the little-endian
//! format of `<linux/posix_acl_xattr.h>` (a version word, then entries of tag, permission
//! bits and id). What `setfacl -m group:G:r-x` writes, [`Acl::encode`] writes; what
//! `getfacl` prints, [`Acl::to_text`] prints.
//!
//! Writing an access ACL also sets the file's mode bits (the kernel keeps them in step:
//! owner from `user::`, group from `mask::`, others from `other::`).

use std::fmt;
use std::io;
use std::path::Path;

/// The attribute of a file's access ACL.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";
/// The attribute of a folder's default ACL (what new children inherit).
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

/// Who an entry is for, in the canonical order of an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    /// The file's owner (`user::`).
    UserObj,
    /// A named user (`user:<uid>:`).
    User(u32),
    /// The file's group (`group::`).
    GroupObj,
    /// A named group (`group:<gid>:`).
    Group(u32),
    /// The upper bound of the group class (`mask::`).
    Mask,
    /// Everyone else (`other::`).
    Other,
}

impl Tag {
    fn code(self) -> (u16, u32) {
        match self {
            Tag::UserObj => (0x01, UNDEFINED_ID),
            Tag::User(id) => (0x02, id),
            Tag::GroupObj => (0x04, UNDEFINED_ID),
            Tag::Group(id) => (0x08, id),
            Tag::Mask => (0x10, UNDEFINED_ID),
            Tag::Other => (0x20, UNDEFINED_ID),
        }
    }

    fn from_code(tag: u16, id: u32) -> Option<Tag> {
        Some(match tag {
            0x01 => Tag::UserObj,
            0x02 => Tag::User(id),
            0x04 => Tag::GroupObj,
            0x08 => Tag::Group(id),
            0x10 => Tag::Mask,
            0x20 => Tag::Other,
            _ => return None,
        })
    }
}

/// Read, write and execute bits of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    /// `---`
    pub const NONE: Perms = Perms(0);
    /// `r--`
    pub const READ: Perms = Perms(4);
    /// `rw-`
    pub const READ_WRITE: Perms = Perms(6);
    /// `r-x`
    pub const READ_EXECUTE: Perms = Perms(5);
    /// `rwx`
    pub const ALL: Perms = Perms(7);

    /// The bits of `mode`'s triple (`0o7` masked).
    pub fn from_bits(bits: u32) -> Perms {
        Perms((bits & 0o7) as u8)
    }

    /// The bits, `0` to `7`.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Both sets of bits.
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |b: u8, c: char| if self.0 & b != 0 { c } else { '-' };
        write!(f, "{}{}{}", bit(4, 'r'), bit(2, 'w'), bit(1, 'x'))
    }
}

/// An ACL whose bytes do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable ACL: {0}")]
pub struct DecodeError(String);

/// An access control list: entries kept in canonical order, one per tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    entries: Vec<(Tag, Perms)>,
}

impl Acl {
    /// The minimal ACL of a mode: owner, group and others, no mask.
    pub fn from_mode(mode: u32) -> Acl {
        let mut acl = Acl::default();
        acl.set(Tag::UserObj, Perms::from_bits(mode >> 6));
        acl.set(Tag::GroupObj, Perms::from_bits(mode >> 3));
        acl.set(Tag::Other, Perms::from_bits(mode));
        acl
    }

    /// The bits of an entry, if it is there.
    pub fn get(&self, tag: Tag) -> Option<Perms> {
        self.entries
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, p)| *p)
    }

    /// Set an entry, replacing the one of the same tag.
    pub fn set(&mut self, tag: Tag, perms: Perms) {
        match self.entries.binary_search_by(|(t, _)| t.cmp(&tag)) {
            Ok(i) => self.entries[i].1 = perms,
            Err(i) => self.entries.insert(i, (tag, perms)),
        }
    }

    /// The entries, in canonical order.
    pub fn entries(&self) -> &[(Tag, Perms)] {
        &self.entries
    }

    /// Set the mask to the union of the group class (the file's group, named users and
    /// named groups), as `setfacl` does unless told not to; an ACL without named entries
    /// keeps no mask.
    pub fn recalculate_mask(&mut self) {
        let named = self
            .entries
            .iter()
            .any(|(t, _)| matches!(t, Tag::User(_) | Tag::Group(_)));
        if !named {
            self.entries.retain(|(t, _)| *t != Tag::Mask);
            return;
        }
        let mask = self
            .entries
            .iter()
            .filter(|(t, _)| matches!(t, Tag::User(_) | Tag::Group(_) | Tag::GroupObj))
            .fold(Perms::NONE, |m, (_, p)| m.union(*p));
        self.set(Tag::Mask, mask);
    }

    /// The kernel's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.entries.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for (tag, perms) in &self.entries {
            let (code, id) = tag.code();
            out.extend_from_slice(&code.to_le_bytes());
            out.extend_from_slice(&u16::from(perms.0).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// Parse the kernel's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Acl, DecodeError> {
        if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
            return Err(DecodeError(format!("{} bytes", bytes.len())));
        }
        let version = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if version != VERSION {
            return Err(DecodeError(format!("version {version}")));
        }
        let mut acl = Acl::default();
        for chunk in bytes[4..].chunks_exact(8) {
            let code = u16::from_le_bytes([chunk[0], chunk[1]]);
            let perms = u16::from_le_bytes([chunk[2], chunk[3]]);
            let id = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let tag = Tag::from_code(code, id)
                .ok_or_else(|| DecodeError(format!("unknown tag {code:#x}")))?;
            if perms > 7 {
                return Err(DecodeError(format!("permission bits {perms:#o}")));
            }
            acl.set(tag, Perms(perms as u8));
        }
        Ok(acl)
    }

    /// The short text form, with numeric ids: `user::rwx,group::r-x,group:1001:r-x,...`.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|(tag, perms)| match tag {
                Tag::UserObj => format!("user::{perms}"),
                Tag::User(id) => format!("user:{id}:{perms}"),
                Tag::GroupObj => format!("group::{perms}"),
                Tag::Group(id) => format!("group:{id}:{perms}"),
                Tag::Mask => format!("mask::{perms}"),
                Tag::Other => format!("other::{perms}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn no_acl(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NODATA
}

/// Read an ACL of `path` (its access ACL, or its default ACL with `default`), without
/// following a symbolic link; `None` when the file has none of that kind (for an access
/// ACL: only its mode bits).
pub fn read(path: &Path, default: bool) -> io::Result<Option<Acl>> {
    let name = if default { DEFAULT_XATTR } else { ACCESS_XATTR };
    let mut buf = vec![0u8; 4 + 8 * 32];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                return Acl::decode(&buf[..n])
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            Err(e) if no_acl(&e) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write an ACL of `path` (the access ACL, or the default ACL of a folder with
/// `default`); the file must be owned by this process's user (or the process must have
/// `CAP_FOWNER`).
pub fn write(path: &Path, default: bool, acl: &Acl) -> io::Result<()> {
    let name = if default { DEFAULT_XATTR } else { ACCESS_XATTR };
    rustix::fs::lsetxattr(path, name, &acl.encode(), rustix::fs::XattrFlags::empty())
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acl_encodes_in_the_kernels_format_and_back() {
        let mut acl = Acl::from_mode(0o750);
        acl.set(Tag::Group(1001), Perms::READ_EXECUTE);
        acl.set(Tag::User(7), Perms::READ);
        acl.recalculate_mask();
        assert_eq!(
            acl.to_text(),
            "user::rwx,user:7:r--,group::r-x,group:1001:r-x,mask::r-x,other::---"
        );
        let bytes = acl.encode();
        // version, then user::rwx as tag 1, perms 7, the undefined id
        assert_eq!(&bytes[..12], &[2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255]);
        assert_eq!(Acl::decode(&bytes).unwrap(), acl);
    }

    #[test]
    fn the_mask_covers_the_group_class_and_goes_without_named_entries() {
        let mut acl = Acl::from_mode(0o640);
        acl.set(Tag::Group(5), Perms::ALL);
        acl.recalculate_mask();
        assert_eq!(acl.get(Tag::Mask), Some(Perms::ALL));
        let mut plain = Acl::from_mode(0o640);
        plain.set(Tag::Mask, Perms::READ);
        plain.recalculate_mask();
        assert_eq!(plain.get(Tag::Mask), None);
    }

    #[test]
    fn hostile_bytes_are_refused_not_trusted() {
        for bytes in [
            &[][..],
            &[2, 0, 0, 0, 1][..],
            &[3, 0, 0, 0][..],
            &[2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0][..],
            &[2, 0, 0, 0, 1, 0, 0x10, 0, 0, 0, 0, 0][..],
        ] {
            assert!(Acl::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
