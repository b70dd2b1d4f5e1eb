//! cgroup v2's device policy: a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to a group.
//!
//! cgroup v1 has a devices controller that takes rules as text (`devices.allow`: `c 1:3 rwm`);
//! cgroup v2 has none. There the kernel runs an eBPF program attached to the group (and to its
//! ancestors) whenever a process in it opens or makes a device node, and the program's answer
//! (1 allow, 0 deny) decides. runc and crun generate that program from the same rules; this is
//! a small generator of the same kind: the v1 rules in, a few instructions per rule out, the
//! last matching rule deciding (as later v1 writes override earlier ones), nothing matching
//! denied.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where `access_type` is `(access << 16) | type` (type: 1 block, 2 char; access: 1 mknod,
//! 2 read, 4 write), see `include/uapi/linux/bpf.h`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// One rule, as v1's `devices.allow`/`devices.deny` take it: `TYPE MAJOR:MINOR ACCESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `Some(2)` char, `Some(1)` block, `None` both (`a`).
    pub kind: Option<u32>,
    /// `None`: any (`*`).
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits of mknod (1), read (2), write (4).
    pub access: u32,
}

impl Rule {
    /// `c 1:3 rwm`, `b *:* m`, `a *:* rwm` (`a` alone means `a *:* rwm`).
    pub fn parse(allow: bool, text: &str) -> Option<Rule> {
        let mut parts = text.split_whitespace();
        let kind = match parts.next()? {
            "a" => None,
            "c" => Some(2),
            "b" => Some(1),
            _ => return None,
        };
        let (major, minor, access) = match (parts.next(), parts.next()) {
            (None, None) if kind.is_none() => (None, None, 7),
            (Some(numbers), Some(access)) => {
                let (major, minor) = numbers.split_once(':')?;
                let num = |n: &str| match n {
                    "*" => Some(None),
                    n => n.parse().ok().map(Some),
                };
                let mut bits = 0;
                for c in access.chars() {
                    bits |= match c {
                        'm' => 1,
                        'r' => 2,
                        'w' => 4,
                        _ => return None,
                    };
                }
                (num(major)?, num(minor)?, bits)
            }
            _ => return None,
        };
        Some(Rule {
            allow,
            kind,
            major,
            minor,
            access,
        })
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low four bits, src_reg in the high four.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program for `rules`: r2 = type, r3 = access, r4 = major, r5 = minor; then one block per
/// rule, last rule first, each returning its answer when every field it names matches; deny
/// when none does.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(AND64_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(RSH64_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // The tests, each a jump over the rest of the block when it fails.
        let mut tests: Vec<Vec<Insn>> = Vec::new();
        if let Some(kind) = rule.kind {
            tests.push(vec![insn(JNE_K, 2, 0, 0, kind as i32)]);
        }
        if rule.access != 7 {
            // Any access bit outside the rule's: no match.
            tests.push(vec![
                insn(MOV64_X, 6, 3, 0, 0),
                insn(AND64_K, 6, 0, 0, !(rule.access as i32) & 7),
                insn(JNE_K, 6, 0, 0, 0),
            ]);
        }
        if let Some(major) = rule.major {
            tests.push(vec![insn(JNE_K, 4, 0, 0, major as i32)]);
        }
        if let Some(minor) = rule.minor {
            tests.push(vec![insn(JNE_K, 5, 0, 0, minor as i32)]);
        }
        let answer = [
            insn(MOV64_K, 0, 0, 0, i32::from(rule.allow)),
            insn(EXIT, 0, 0, 0, 0),
        ];
        if tests.is_empty() {
            // It matches every access (`a *:* rwm`): nothing after it can be reached, and the
            // verifier refuses unreachable instructions.
            out.extend(answer);
            return out;
        }
        let mut block: Vec<Insn> = tests.into_iter().flatten().collect();
        block.extend(answer);
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        out.extend(block);
    }
    out.push(insn(MOV64_K, 0, 0, 0, 0));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `bpf(BPF_PROG_LOAD)` of a device program; the kernel's verifier checks it. Loaded first
/// without a log: a verifier that writes one takes most of a millisecond more, on every
/// container's start. Only a refused program is loaded again, with the log, which comes back
/// with the error.
pub fn load(program: &[Insn]) -> Result<OwnedFd, (Errno, String)> {
    match load_with_log(program, false) {
        Ok(fd) => Ok(fd),
        Err(_) => load_with_log(program, true),
    }
}

fn load_with_log(program: &[Insn], with_log: bool) -> Result<OwnedFd, (Errno, String)> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; if with_log { 64 * 1024 } else { 0 }];
    // union bpf_attr, the BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level,
    // log_size, log_buf (the rest zero).
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(program.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(program.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    if with_log {
        attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
        attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
        attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    }
    // SAFETY: attr is a zeroed bpf_attr of the size passed, whose pointers (the instructions,
    // the license string, and with a log the log buffer with its length) stay valid for the
    // whole call; the kernel copies the program and writes at most log_size bytes of log
    // (none without one: log_level 0) (bpf(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            attr.len() as u32,
        )
    };
    match Errno::result(res) {
        // SAFETY: on success bpf(2) returns a new descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// `bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)`: attach a loaded program to
/// the group open as `cgroup`. It stays attached until the group is removed.
pub fn attach(program: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(program.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    // SAFETY: a zeroed bpf_attr of the size passed, holding two descriptors that are open for
    // the whole call; nothing is written back (bpf(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attr.as_mut_ptr(),
            attr.len() as u32,
        )
    };
    Errno::result(res).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_v1s_files() {
        let r = Rule::parse(true, "c 1:3 rwm").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access),
            (Some(2), Some(1), Some(3), 7)
        );
        let r = Rule::parse(false, "a").unwrap();
        assert_eq!((r.kind, r.major, r.access), (None, None, 7));
        let r = Rule::parse(true, "b *:* m").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access),
            (Some(1), None, None, 1)
        );
        assert!(Rule::parse(true, "x 1:3 r").is_none());
        assert!(Rule::parse(true, "c 1:3 q").is_none());
    }

    #[test]
    fn each_test_jumps_to_the_next_rule() {
        let p = program(&[Rule::parse(true, "c 1:3 rw").unwrap()]);
        // prologue 6; type 1; access 3; major 1; minor 1; answer 2; default 2
        assert_eq!(p.len(), 6 + 1 + 3 + 1 + 1 + 2 + 2);
        let jumps: Vec<i16> = p
            .iter()
            .filter(|i| i.code == JNE_K)
            .map(|i| i.off)
            .collect();
        assert_eq!(jumps, [7, 4, 3, 2], "each lands on the default deny");
        assert_eq!(p[p.len() - 4].imm, 1, "a match allows");
        assert_eq!(p[p.len() - 2].imm, 0, "nothing matching: deny");
        // A leading "deny all" is the default itself: it ends the program.
        let q = program(&[
            Rule::parse(false, "a").unwrap(),
            Rule::parse(true, "c 1:3 rw").unwrap(),
        ]);
        assert_eq!(q.len(), p.len());
        assert_eq!(q[q.len() - 2].imm, 0);
    }
}
