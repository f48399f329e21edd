//! Machine proof: what the run ran on, read from `/proc` and the cgroup files.

use serde::{Deserialize, Serialize};

/// The machine a run ran on. Fields that cannot be read are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineProof {
    /// CPU model (`model name` in `/proc/cpuinfo`).
    pub cpu_model: Option<String>,
    /// Logical CPUs the kernel reports.
    pub logical_cpus: Option<usize>,
    /// CPUs this process may use (affinity and cgroup aware).
    pub available_parallelism: Option<usize>,
    /// cgroup CPU limit in CPUs (`cpu.max` quota / period), `None` when unlimited or unknown.
    pub cgroup_cpu_quota: Option<f64>,
    /// `MemTotal` in kB.
    pub mem_total_kb: Option<u64>,
    /// Kernel name and release.
    pub kernel: Option<String>,
    /// 1, 5 and 15 minute load averages.
    pub load_average: Option<[f64; 3]>,
    /// Host name.
    pub hostname: Option<String>,
    /// CPU feature flags relevant to the figures (e.g. `sha_ni`, `avx2`).
    pub cpu_flags: Vec<String>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl MachineProof {
    /// Reads the proof of this machine.
    pub fn collect() -> Self {
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags = field("flags").unwrap_or_default();
        let cpu_flags = ["sha_ni", "avx2", "avx512f", "aes"]
            .iter()
            .filter(|f| flags.split_whitespace().any(|x| x == **f))
            .map(|f| f.to_string())
            .collect();
        let logical = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let quota = read("/sys/fs/cgroup/cpu.max").and_then(|s| {
            let mut it = s.split_whitespace();
            let q = it.next()?.parse::<f64>().ok()?;
            let p = it.next()?.parse::<f64>().ok()?;
            (p > 0.0).then_some(q / p)
        });
        let mem_total_kb = read("/proc/meminfo").and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        });
        let kernel = match (
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
        ) {
            (Some(t), Some(r)) => Some(format!("{} {}", t.trim(), r.trim())),
            _ => None,
        };
        let load_average = read("/proc/loadavg").and_then(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        });
        MachineProof {
            cpu_model: field("model name"),
            logical_cpus: (logical > 0).then_some(logical),
            available_parallelism: std::thread::available_parallelism().ok().map(|n| n.get()),
            cgroup_cpu_quota: quota,
            mem_total_kb,
            kernel,
            load_average,
            hostname: read("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()),
            cpu_flags,
        }
    }

    /// The human-readable `cpu-proof.txt`.
    pub fn to_text(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let num = |v: Option<usize>| v.map_or("unknown".into(), |n| n.to_string());
        format!(
            "cpu model:             {}\nlogical cpus:          {}\navailable parallelism: {}\ncgroup cpu quota:      {}\nmem total:             {}\nkernel:                {}\nload average:          {}\nhostname:              {}\ncpu flags:             {}\n",
            opt(&self.cpu_model),
            num(self.logical_cpus),
            num(self.available_parallelism),
            self.cgroup_cpu_quota.map_or("none (unlimited or not set)".into(), |q| format!("{q:.2} CPUs")),
            self.mem_total_kb.map_or("unknown".into(), |k| format!("{k} kB")),
            opt(&self.kernel),
            self.load_average.map_or("unknown".into(), |l| format!("{} {} {}", l[0], l[1], l[2])),
            opt(&self.hostname),
            self.cpu_flags.join(" "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = MachineProof::collect();
        assert!(m.logical_cpus.unwrap_or(0) >= 1, "{m:?}");
        assert!(m.mem_total_kb.unwrap_or(0) > 0, "{m:?}");
        assert!(
            m.kernel.as_deref().unwrap_or("").starts_with("Linux"),
            "{m:?}"
        );
        let text = m.to_text();
        assert!(text.contains("logical cpus:"), "{text}");
    }
}
