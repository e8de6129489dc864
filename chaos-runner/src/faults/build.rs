//! The factory: a validated fault and one of its steps become the fault that runs.

use std::time::Duration;

use super::local::netcmd::NetSelectorError;
use super::{kube, local, Fault, FaultContext};
use crate::spec::params::network::NetMatch;
use crate::spec::{FaultParams, FaultSpec, PartitionAction, ValidatedFault};

/// Builds the fault for one step of `fault` with `params` (one of its steps), to hold for
/// at most `remaining` (its own expiry). Nothing is injected until [`Fault::inject`].
///
/// ```
/// use chaos_runner::faults::{build, FaultContext};
/// let exp = chaos_runner::spec::load_experiment(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/cpu-hog.yaml"))).unwrap();
/// let ctx = FaultContext::new("r1", "/bin/false");
/// let hog = &exp.faults[0];
/// let fault = build(&ctx, hog, &hog.steps[0], std::time::Duration::from_secs(1));
/// assert!(fault.describe().contains("worker"));
/// ```
pub fn build(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    params: &FaultParams,
    remaining: Duration,
) -> Box<dyn Fault> {
    let spec = &fault.spec;
    match params {
        FaultParams::CpuHog(p) => Box::new(local::cpu_hog::CpuHog::new(
            &spec.name,
            &ctx.run_id,
            *p,
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::Db(p) => match &spec.selector.service {
            Some(service) => Box::new(kube::db_proxy::DbProxyFault::new(
                (&spec.name, spec.fault_type.name()),
                (&ctx.run_id, &ctx.experiment),
                p.clone(),
                service.clone(),
                remaining,
                ctx.kube.clone(),
            )),
            None => Box::new(local::db_fault::DbFault::new(
                &spec.name,
                spec.fault_type.name(),
                &ctx.run_id,
                p.clone(),
                &spec.selector.proxy.clone().unwrap_or_default(),
                &ctx.proxies,
                remaining,
            )),
        },
        FaultParams::MemoryHog(p) => Box::new(local::memory_hog::MemoryHog::new(
            &spec.name,
            &ctx.run_id,
            *p,
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::DiskFill(p) => Box::new(local::disk_fill::DiskFill::new(
            &spec.name,
            &ctx.run_id,
            p.clone(),
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::ProcessKill(_)
        | FaultParams::ProcessPause(_)
        | FaultParams::ProcessRestart(_) => {
            let action = match params {
                FaultParams::ProcessKill(p) => local::process::Action::Kill(*p),
                FaultParams::ProcessRestart(p) => local::process::Action::Restart(*p),
                _ => local::process::Action::Pause,
            };
            Box::new(local::process::ProcessFault::new(
                &spec.name,
                &ctx.run_id,
                action,
                spec.selector.process.clone().unwrap_or_default(),
                ctx.supervisors.get(&spec.name).cloned(),
                remaining,
                ctx.exe.clone(),
            ))
        }
        FaultParams::NetLoss(p) => net_filter(
            ctx,
            fault,
            local::nftables::Action::Loss(p.percent),
            remaining,
        ),
        FaultParams::NetPartition(p) => net_filter(
            ctx,
            fault,
            match p.action {
                PartitionAction::Drop => local::nftables::Action::Drop,
                PartitionAction::Reject => local::nftables::Action::Reject,
            },
            remaining,
        ),
        FaultParams::NetBandwidth(p) => {
            qdisc(ctx, fault, local::tc::Shape::Bandwidth(*p), remaining)
        }
        FaultParams::NetDelay(p) => qdisc(ctx, fault, local::tc::Shape::Delay(*p), remaining),
        FaultParams::PodKill(p) => Box::new(kube::pod_kill::PodKill::new(
            &spec.name,
            &ctx.run_id,
            spec.selector.pods.clone().unwrap_or_default(),
            *p,
            ctx.kube.clone(),
        )),
        FaultParams::PodCpuHog(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Cpu {
                workers: p.workers,
                load: p.load,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodMemoryHog(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Memory {
                bytes: p.bytes.as_u64(),
                touch: p.touch,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodNetDelay(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Netem {
                interface: p.interface.clone(),
                delay: p.delay,
                jitter: p.jitter,
                loss_percent: p.loss_percent,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodNetLoss(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Netem {
                interface: p.interface.clone(),
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
                loss_percent: p.loss_percent,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::ContainerKill(p) => Box::new(kube::container_kill::ContainerKill::new(
            &spec.name,
            &ctx.run_id,
            &ctx.experiment,
            spec.selector.pods.clone().unwrap_or_default(),
            p.clone(),
            remaining,
            ctx.kube.clone(),
        )),
        FaultParams::NetworkPartition(p) => policy_fault(
            ctx,
            spec,
            kube::network_policy::PolicyKind::Partition(p.direction),
        ),
        FaultParams::DbPartition(p) => policy_fault(
            ctx,
            spec,
            kube::network_policy::PolicyKind::Database(p.clone()),
        ),
        FaultParams::Proxy(p) => Box::new(local::proxy_fault::ProxyFault::new(
            &spec.name,
            spec.fault_type.name(),
            &ctx.run_id,
            p.clone(),
            &spec.selector.proxy.clone().unwrap_or_default(),
            &ctx.proxies,
            remaining,
        )),
    }
}

fn pod_helper(
    ctx: &FaultContext,
    spec: &FaultSpec,
    params: &FaultParams,
    helper: kube::ephemeral::Helper,
    (image, container): (&str, &Option<String>),
    remaining: Duration,
) -> Box<dyn Fault> {
    Box::new(kube::ephemeral::PodHelperFault::new(
        &spec.name,
        &ctx.run_id,
        &ctx.experiment,
        spec.selector.pods.clone().unwrap_or_default(),
        (helper, image, container.clone()),
        params.summary(),
        remaining,
        ctx.kube.clone(),
    ))
}

fn policy_fault(
    ctx: &FaultContext,
    spec: &FaultSpec,
    kind: kube::network_policy::PolicyKind,
) -> Box<dyn Fault> {
    Box::new(kube::network_policy::PolicyFault::new(
        &spec.name,
        &ctx.run_id,
        &ctx.experiment,
        spec.selector.pods.clone().unwrap_or_default(),
        kind,
        ctx.kube.clone(),
    ))
}

fn net_filter(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    action: local::nftables::Action,
    remaining: Duration,
) -> Box<dyn Fault> {
    Box::new(local::nftables::NetFilter::new(
        &fault.spec.name,
        &ctx.run_id,
        network_match(fault),
        action,
        remaining,
        ctx.exe.clone(),
    ))
}

fn qdisc(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    shape: local::tc::Shape,
    remaining: Duration,
) -> Box<dyn Fault> {
    let m = network_match(fault);
    Box::new(local::tc::Qdisc::new(
        &fault.spec.name,
        &ctx.run_id,
        m.as_ref().ok().and_then(|m| m.netns.clone()),
        m.and_then(|m| m.interface.ok_or(NetSelectorError::NoInterface)),
        shape,
        remaining,
        ctx.exe.clone(),
    ))
}

/// The resolved network selector of a network fault (validation requires one; its
/// absence fails the injection instead of panicking).
fn network_match(fault: &ValidatedFault) -> Result<NetMatch, NetSelectorError> {
    fault.network.clone().ok_or(NetSelectorError::NoNetwork)
}
