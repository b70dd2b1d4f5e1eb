//! `linux.resources` as cgroup files: what `create` writes into a container's new groups and
//! `update` into its existing ones, in the files of the version each controller has on this
//! host (v1 hierarchies, the v2 one, or both on a hybrid host).
//!
//! Read as runc reads it: a CPU share or block I/O weight of 0 is "not set" (Docker sends
//! zeros for what its user did not ask); a field a controller's version cannot do is refused by
//! its name before anything is made (v2 has no swappiness, no OOM-killer switch, no net_cls),
//! and a file the kernel does not offer (`blkio.weight` without a weighted I/O scheduler, the
//! real-time CPU files without `CONFIG_RT_GROUP_SCHED`) is refused by its name when found
//! missing, never skipped.

use anyhow::{Result, bail};
use cgroup_demo::cg::Version;
use oci_spec::runtime::{LinuxBlockIo, LinuxResources, LinuxThrottleDevice};

use crate::spec::unsupported;

/// The CFS period when a quota comes without one (the kernel's default, 100 ms).
pub const CPU_PERIOD: u64 = 100_000;

/// A container's resources, as the engine writes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Bytes; -1 for no limit.
    pub memory: Option<i64>,
    /// Memory and swap together (the spec's meaning); -1 for no limit.
    pub memory_swap: Option<i64>,
    /// The soft limit (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_reservation: Option<i64>,
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: bool,
    pub pids: Option<i64>,
    /// (quota, period) in microseconds.
    pub cpu: Option<(i64, u64)>,
    /// A period without a quota (`update --cpu-period`).
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpu_burst: Option<u64>,
    pub cpu_idle: Option<i64>,
    /// (runtime, period) of real-time scheduling, microseconds.
    pub cpu_rt: (Option<i64>, Option<u64>),
    /// (cpus, mems).
    pub cpuset: Option<(Option<String>, Option<String>)>,
    pub block_io: Option<LinuxBlockIo>,
    /// (page size as the kernel names it, `2MB`; limit in bytes).
    pub hugepages: Vec<(String, i64)>,
    pub net_class_id: Option<u32>,
    /// (interface, priority).
    pub net_priorities: Vec<(String, u32)>,
    /// `linux.resources.unified`: v2 files by name.
    pub unified: Vec<(String, String)>,
    /// `linux.resources.devices` as v1's rule text, in order: (allow, "c 1:3 rwm").
    pub device_rules: Vec<(bool, String)>,
}

/// A number asks for something only when it is not 0 (runc's reading: Go's zero value is what a
/// client sends for "leave it", Docker's update among them).
fn set(v: &i64) -> bool {
    *v != 0
}

/// An empty string asks for nothing.
fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// A block I/O weight asks for something only when it is not 0.
fn weight(w: Option<u16>) -> Option<u16> {
    w.filter(|w| *w != 0)
}

impl Resources {
    /// Read `linux.resources`; what no version of cgroups can do here is refused by name.
    pub fn new(r: Option<&LinuxResources>) -> Result<Resources> {
        let Some(r) = r else {
            return Ok(Resources::default());
        };
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported("linux.resources.rdma"));
        }
        let memory = r.memory().as_ref();
        if memory.and_then(|m| m.kernel()).is_some_and(|k| k != 0) {
            // Gone from the kernel since 5.16 (and from runc): nothing would apply it.
            return Err(unsupported(
                "linux.resources.memory.kernel (kernel memory limits are gone from Linux)",
            ));
        }
        if memory.and_then(|m| m.use_hierarchy()) == Some(false) {
            return Err(unsupported(
                "linux.resources.memory.useHierarchy false (always hierarchical since Linux 6.1)",
            ));
        }
        let cpu = r.cpu().as_ref();
        let block_io = r.block_io().clone().filter(|b| {
            weight(b.weight()).is_some()
                || weight(b.leaf_weight()).is_some()
                || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
                || [
                    b.throttle_read_bps_device(),
                    b.throttle_write_bps_device(),
                    b.throttle_read_iops_device(),
                    b.throttle_write_iops_device(),
                ]
                .iter()
                .any(|t| t.as_ref().is_some_and(|v| !v.is_empty()))
        });
        let mut unified: Vec<(String, String)> = r
            .unified()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        unified.sort();
        for (key, _) in &unified {
            if key.contains('/') || !key.contains('.') || key.starts_with("cgroup.") {
                return Err(labkit::bad_input(format!(
                    "config: linux.resources.unified {key:?}: a controller's file of the container's own group"
                )));
            }
        }
        let network = r.network().as_ref();
        let quota = cpu.and_then(|c| c.quota()).filter(set);
        let period = cpu.and_then(|c| c.period()).filter(|p| *p != 0);
        Ok(Resources {
            memory: memory.and_then(|m| m.limit()).filter(set),
            memory_swap: memory.and_then(|m| m.swap()).filter(set),
            memory_reservation: memory.and_then(|m| m.reservation()).filter(set),
            kernel_tcp: memory.and_then(|m| m.kernel_tcp()).filter(set),
            swappiness: memory.and_then(|m| m.swappiness()),
            disable_oom_killer: memory.and_then(|m| m.disable_oom_killer()) == Some(true),
            pids: r.pids().as_ref().map(|p| p.limit()).filter(set),
            cpu: quota.map(|q| (q, period.unwrap_or(CPU_PERIOD))),
            cpu_period: period.filter(|_| quota.is_none()),
            cpu_shares: cpu.and_then(|c| c.shares()).filter(|s| *s != 0),
            cpu_burst: cpu.and_then(|c| c.burst()),
            cpu_idle: cpu.and_then(|c| c.idle()),
            cpu_rt: (
                cpu.and_then(|c| c.realtime_runtime()).filter(set),
                cpu.and_then(|c| c.realtime_period()).filter(|p| *p != 0),
            ),
            cpuset: cpu
                .map(|c| (nonempty(c.cpus()), nonempty(c.mems())))
                .filter(|(c, m)| c.is_some() || m.is_some()),
            block_io,
            hugepages: r
                .hugepage_limits()
                .iter()
                .flatten()
                .map(|h| (h.page_size().clone(), h.limit()))
                .collect(),
            net_class_id: network.and_then(|n| n.class_id()),
            net_priorities: network
                .and_then(|n| n.priorities().as_ref())
                .into_iter()
                .flatten()
                .map(|p| (p.name().clone(), p.priority()))
                .collect(),
            unified,
            device_rules: device_rules(r),
        })
    }

    /// Whether any limit is asked for (and so a cgroup is needed; the device rules, which
    /// every container run as root gets anyway, are not counted).
    pub fn any(&self) -> bool {
        !self.controllers().is_empty()
    }

    /// The controllers these resources write to.
    pub fn controllers(&self) -> Vec<String> {
        let memory = self.memory.is_some()
            || self.memory_swap.is_some()
            || self.memory_reservation.is_some()
            || self.kernel_tcp.is_some()
            || self.swappiness.is_some()
            || self.disable_oom_killer;
        let cpu = self.cpu.is_some()
            || self.cpu_period.is_some()
            || self.cpu_shares.is_some()
            || self.cpu_burst.is_some()
            || self.cpu_idle.is_some()
            || self.cpu_rt != (None, None);
        let mut wanted: Vec<String> = [
            (memory, "memory"),
            (self.pids.is_some(), "pids"),
            (cpu, "cpu"),
            (self.cpuset.is_some(), "cpuset"),
            (self.block_io.is_some(), "blkio"),
            (!self.hugepages.is_empty(), "hugetlb"),
            (self.net_class_id.is_some(), "net_cls"),
            (!self.net_priorities.is_empty(), "net_prio"),
        ]
        .into_iter()
        .filter(|(asked, _)| *asked)
        .map(|(_, c)| c.to_string())
        .collect();
        for (key, _) in &self.unified {
            let controller = key.split('.').next().unwrap_or_default().to_string();
            if !wanted.contains(&controller) {
                wanted.push(controller);
            }
        }
        wanted
    }

    /// What to write for `controller` in a group of `version`: (file, value) in order. On v2 the
    /// block I/O controller is `io`; on v1 the network's are `net_cls` and `net_prio`.
    pub fn writes(&self, controller: &str, version: Version) -> Result<Vec<(String, String)>> {
        let mut w: Vec<(String, String)> = Vec::new();
        let mut put = |file: &str, value: String| w.push((file.to_string(), value));
        let v1 = version == Version::V1;
        match controller {
            "memory" => {
                if let Some(limit) = self.memory {
                    if v1 {
                        put("memory.limit_in_bytes", limit.to_string());
                        // Memory and swap together: memsw in v1.
                        let swap = self.memory_swap.unwrap_or(limit);
                        put("memory.memsw.limit_in_bytes", swap.to_string());
                    } else {
                        let (max, swap) = v2_memory(limit, self.memory_swap)?;
                        put("memory.max", max);
                        put("memory.swap.max", swap);
                    }
                } else if self.memory_swap.is_some() {
                    bail!(labkit::bad_input(
                        "config: linux.resources.memory.swap without a memory limit (it counts memory and swap together)"
                    ));
                }
                if let Some(r) = self.memory_reservation {
                    let file = if v1 {
                        "memory.soft_limit_in_bytes"
                    } else {
                        "memory.low"
                    };
                    put(file, max_or(r));
                }
                if let Some(tcp) = self.kernel_tcp {
                    if !v1 {
                        return Err(on_v2("linux.resources.memory.kernelTCP"));
                    }
                    put("memory.kmem.tcp.limit_in_bytes", tcp.to_string());
                }
                if let Some(s) = self.swappiness {
                    if !v1 {
                        return Err(on_v2("linux.resources.memory.swappiness"));
                    }
                    if s > 100 {
                        bail!(labkit::bad_input(format!(
                            "config: linux.resources.memory.swappiness {s}: 0 to 100"
                        )));
                    }
                    put("memory.swappiness", s.to_string());
                }
                if self.disable_oom_killer {
                    if !v1 {
                        return Err(on_v2("linux.resources.memory.disableOOMKiller"));
                    }
                    put("memory.oom_control", "1".into());
                }
            }
            "pids" => {
                // Below 0: no limit (pids.max takes "max", not -1).
                if let Some(p) = self.pids {
                    put("pids.max", if p > 0 { p.to_string() } else { "max".into() });
                }
            }
            "cpu" => self.cpu_writes(v1, &mut put)?,
            "cpuset" => {
                // Memory nodes first: v1 refuses CPUs for a group with no nodes.
                let (cpus, mems) = self.cpuset.clone().unwrap_or_default();
                if let Some(mems) = mems {
                    put("cpuset.mems", mems);
                }
                if let Some(cpus) = cpus {
                    put("cpuset.cpus", cpus);
                }
            }
            "blkio" | "io" => {
                if let Some(b) = &self.block_io {
                    block_io(b, v1, &mut put)?;
                }
            }
            "hugetlb" => {
                for (size, limit) in &self.hugepages {
                    let file = if v1 {
                        format!("hugetlb.{size}.limit_in_bytes")
                    } else {
                        format!("hugetlb.{size}.max")
                    };
                    put(&file, limit.to_string());
                }
            }
            "net_cls" => {
                if let Some(id) = self.net_class_id {
                    put("net_cls.classid", id.to_string());
                }
            }
            "net_prio" => {
                for (name, prio) in &self.net_priorities {
                    put("net_prio.ifpriomap", format!("{name} {prio}"));
                }
            }
            _ => {}
        }
        if !self.unified.is_empty() {
            let prefix = if controller == "blkio" {
                "io"
            } else {
                controller
            };
            for (key, value) in &self.unified {
                if key.split('.').next() == Some(prefix) {
                    if v1 {
                        return Err(unsupported(&format!(
                            "linux.resources.unified {key} (the {controller} controller is cgroup v1 here)"
                        )));
                    }
                    w.push((key.clone(), value.clone()));
                }
            }
        }
        Ok(w)
    }

    fn cpu_writes(&self, v1: bool, put: &mut impl FnMut(&str, String)) -> Result<()> {
        if v1 {
            if let Some((quota, period)) = self.cpu {
                put("cpu.cfs_period_us", period.to_string());
                put("cpu.cfs_quota_us", quota.to_string());
            } else if let Some(period) = self.cpu_period {
                put("cpu.cfs_period_us", period.to_string());
            }
            if let Some(shares) = self.cpu_shares {
                put("cpu.shares", shares.to_string());
            }
            if let Some(burst) = self.cpu_burst {
                put("cpu.cfs_burst_us", burst.to_string());
            }
            if self.cpu_idle.is_some() {
                return Err(unsupported(
                    "linux.resources.cpu.idle (cgroup v2's cpu.idle; the cpu controller is v1 here)",
                ));
            }
            // The period first: the runtime must fit in it.
            if let Some(period) = self.cpu_rt.1 {
                put("cpu.rt_period_us", period.to_string());
            }
            if let Some(runtime) = self.cpu_rt.0 {
                put("cpu.rt_runtime_us", runtime.to_string());
            }
        } else {
            if let Some((quota, period)) = self.cpu {
                put("cpu.max", format!("{} {period}", max_or(quota)));
            } else if let Some(period) = self.cpu_period {
                put("cpu.max", format!("max {period}"));
            }
            if let Some(shares) = self.cpu_shares {
                // v1 shares (2..262144) onto v2 weights (1..10000), as runc converts them.
                let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                put("cpu.weight", weight.to_string());
            }
            if let Some(burst) = self.cpu_burst {
                put("cpu.max.burst", burst.to_string());
            }
            if let Some(idle) = self.cpu_idle {
                put("cpu.idle", idle.to_string());
            }
            if self.cpu_rt != (None, None) {
                return Err(on_v2(
                    "linux.resources.cpu realtimeRuntime and realtimePeriod",
                ));
            }
        }
        Ok(())
    }
}

/// Block I/O: weights and throttles, in v1's `blkio.*` files or v2's `io.weight` and `io.max`.
fn block_io(b: &LinuxBlockIo, v1: bool, put: &mut impl FnMut(&str, String)) -> Result<()> {
    if let Some(w) = weight(b.weight()) {
        put(if v1 { "blkio.weight" } else { "io.weight" }, w.to_string());
    }
    if let Some(w) = weight(b.leaf_weight()) {
        if !v1 {
            return Err(on_v2("linux.resources.blockIO.leafWeight"));
        }
        put("blkio.leaf_weight", w.to_string());
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = weight(d.weight()) {
            let file = if v1 {
                "blkio.weight_device"
            } else {
                "io.weight"
            };
            put(file, format!("{}:{} {w}", d.major(), d.minor()));
        }
        if weight(d.leaf_weight()).is_some() {
            if !v1 {
                return Err(on_v2("linux.resources.blockIO.weightDevice[].leafWeight"));
            }
            let w = d.leaf_weight().unwrap_or_default();
            put(
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            );
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (devices, v1_file, v2_key) in throttles {
        for d in devices.iter().flatten() {
            let (dev, rate) = (format!("{}:{}", d.major(), d.minor()), d.rate());
            if v1 {
                put(v1_file, format!("{dev} {rate}"));
            } else {
                put("io.max", format!("{dev} {v2_key}={rate}"));
            }
        }
    }
    Ok(())
}

/// A field cgroup v2 has no file for.
fn on_v2(field: &str) -> anyhow::Error {
    unsupported(&format!(
        "{field} (cgroup v2 has no such setting; its controller is v2 here)"
    ))
}

/// -1 (or less) as "max".
fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The spec's memory limit and swap (memory and swap together; -1 for no limit) as v2's
/// `memory.max` and `memory.swap.max` (swap alone), as runc converts them. No swap without one
/// in the spec, as in v1.
pub(crate) fn v2_memory(limit: i64, swap: Option<i64>) -> Result<(String, String)> {
    let swap = match swap {
        _ if limit < 0 => "max".to_string(),
        None => "0".to_string(),
        Some(s) if s < 0 => "max".to_string(),
        Some(s) if s >= limit => (s - limit).to_string(),
        Some(s) => {
            return Err(labkit::bad_input(format!(
                "config: linux.resources.memory.swap {s} is below the limit {limit} (it counts memory and swap together)"
            )));
        }
    };
    Ok((max_or(limit), swap))
}

/// `linux.resources.devices` as v1's rule text, in order.
fn device_rules(r: &LinuxResources) -> Vec<(bool, String)> {
    r.devices()
        .iter()
        .flatten()
        .map(|d| {
            let kind = match d.typ() {
                Some(oci_spec::runtime::LinuxDeviceType::C) => "c",
                Some(oci_spec::runtime::LinuxDeviceType::B) => "b",
                _ => "a",
            };
            let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
            let access = d.access().clone().unwrap_or_else(|| "rwm".into());
            (
                d.allow(),
                format!("{kind} {}:{} {access}", num(d.major()), num(d.minor())),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Resources> {
        Resources::new(Some(&serde_json::from_value(json).unwrap()))
    }

    #[test]
    fn v2_memory_values_follow_runc() {
        let v = |limit, swap| v2_memory(limit, swap).unwrap();
        assert_eq!(
            v(64, None),
            ("64".into(), "0".into()),
            "no swap unless asked"
        );
        assert_eq!(v(64, Some(64)), ("64".into(), "0".into()));
        assert_eq!(v(64, Some(100)), ("64".into(), "36".into()), "swap alone");
        assert_eq!(v(64, Some(-1)), ("64".into(), "max".into()), "-1: no limit");
        assert_eq!(v(-1, None), ("max".into(), "max".into()));
        assert!(v2_memory(64, Some(32)).is_err());
    }

    #[test]
    fn dockers_zeros_ask_for_nothing() {
        let r = parse(serde_json::json!({
            "memory": {"disableOOMKiller": false, "limit": 0, "kernel": 0, "swap": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "pids": {"limit": 0},
            "blockIO": {"weight": 0}
        }))
        .unwrap();
        assert!(!r.any(), "{r:?}");
    }

    #[test]
    fn each_field_lands_in_its_versions_file() {
        let r = parse(serde_json::json!({
            "memory": {"limit": 1000, "reservation": 500, "swappiness": 10, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "realtimeRuntime": 1000, "realtimePeriod": 10000},
            "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]},
            "pids": {"limit": 9}
        }))
        .unwrap();
        let files = |c: &str, v| {
            r.writes(c, v)
                .unwrap()
                .into_iter()
                .map(|(f, v)| format!("{f}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            files("memory", Version::V1),
            [
                "memory.limit_in_bytes=1000",
                "memory.memsw.limit_in_bytes=1000",
                "memory.soft_limit_in_bytes=500",
                "memory.swappiness=10",
                "memory.oom_control=1"
            ]
        );
        assert!(
            r.writes("memory", Version::V2)
                .unwrap_err()
                .to_string()
                .contains("swappiness"),
            "v2 has no swappiness: refused by name"
        );
        assert_eq!(
            files("cpu", Version::V1),
            [
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=20000",
                "cpu.shares=512",
                "cpu.rt_period_us=10000",
                "cpu.rt_runtime_us=1000"
            ]
        );
        assert_eq!(
            files("blkio", Version::V1),
            [
                "blkio.weight=300",
                "blkio.throttle.read_bps_device=7:0 1048576"
            ]
        );
        assert_eq!(
            files("io", Version::V2),
            ["io.weight=300", "io.max=7:0 rbps=1048576"]
        );
        assert_eq!(files("hugetlb", Version::V2), ["hugetlb.2MB.max=4194304"]);
        assert_eq!(files("net_cls", Version::V1), ["net_cls.classid=1048577"]);
        assert_eq!(files("net_prio", Version::V1), ["net_prio.ifpriomap=lo 5"]);
        assert_eq!(files("pids", Version::V2), ["pids.max=9"]);
        assert_eq!(
            r.controllers(),
            [
                "memory", "pids", "cpu", "blkio", "hugetlb", "net_cls", "net_prio"
            ]
        );
    }

    #[test]
    fn what_no_kernel_here_does_is_refused_by_name() {
        let err = |j| parse(j).unwrap_err().to_string();
        assert!(err(serde_json::json!({"memory": {"kernel": 1}})).contains("memory.kernel"));
        assert!(err(serde_json::json!({"rdma": {"mlx": {"hcaHandles": 1}}})).contains("rdma"));
        assert!(err(serde_json::json!({"unified": {"../x": "1"}})).contains("unified"));
    }
}
