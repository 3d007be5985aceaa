// Renders every kustomize tree of deploy/k8s with `kubectl kustomize` and
// validates every object: against its Kubernetes or prometheus-operator schema
// (kubernetes-models, @kubernetes-models/prometheus-operator: types, required
// fields, enums, formats), then against the rules every Vantage workload keeps
// (non-root, read-only root filesystem, no capabilities, seccomp RuntimeDefault,
// requests and limits, the app.kubernetes.io labels). Prints the objects of
// each tree by kind. Then the negative test: objects broken on purpose must
// each fail, or this script fails.
//
// Usage: node validate.mjs [--self-test-only]. Exit 0: everything valid.
import { execFileSync } from "node:child_process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";

const k8sDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const trees = [
  "overlays/control-plane",
  "overlays/region-us-east",
  "overlays/region-eu-west",
  "overlays/region-ap-south",
  "examples/postgres",
];

function render(tree) {
  const out = execFileSync("kubectl", ["kustomize", join(k8sDir, tree)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return yaml.loadAll(out).filter((o) => o !== null);
}

// The model class of an object: kubernetes-models/<group>/<version>/<Kind>
// (the core group as "v1"), or the prometheus-operator package for
// monitoring.coreos.com. A kind without a model is an error: nothing goes
// unvalidated.
async function modelOf(obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const pkg = group === "monitoring.coreos.com" ? "@kubernetes-models/prometheus-operator" : "kubernetes-models";
  const path = group === "" ? `${pkg}/${version}/${obj.kind}` : `${pkg}/${group}/${version}/${obj.kind}`;
  try {
    return (await import(path))[obj.kind];
  } catch (e) {
    throw new Error(`no schema for ${obj.apiVersion} ${obj.kind} (${path}): ${e.code ?? e.message}`);
  }
}

function podSpecOf(obj) {
  if (["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(obj.kind)) return obj.spec?.template?.spec;
  if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template?.spec;
  if (obj.kind === "Pod") return obj.spec;
  return undefined;
}

// The rules of /work/shared/design/style.md "Kubernetes", for every workload.
function policyErrors(obj) {
  const errors = [];
  // Everything Vantage runs or exposes carries the recommended labels; the
  // generated ConfigMaps and Secrets, and the Namespace, need not.
  if (!["ConfigMap", "Secret", "Namespace"].includes(obj.kind)) {
    const labels = obj.metadata?.labels ?? {};
    for (const l of ["app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"]) {
      if (!labels[l]) errors.push(`metadata.labels: no ${l}`);
    }
  }
  const pod = podSpecOf(obj);
  if (!pod) return errors;
  const psc = pod.securityContext ?? {};
  if (psc.runAsNonRoot !== true) errors.push("spec.securityContext.runAsNonRoot is not true");
  if (psc.seccompProfile?.type !== "RuntimeDefault") errors.push("spec.securityContext.seccompProfile.type is not RuntimeDefault");
  for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
    const at = `container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (sc.readOnlyRootFilesystem !== true) errors.push(`${at}: securityContext.readOnlyRootFilesystem is not true`);
    if (sc.allowPrivilegeEscalation !== false) errors.push(`${at}: securityContext.allowPrivilegeEscalation is not false`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) errors.push(`${at}: securityContext.capabilities.drop lacks ALL`);
    if (sc.runAsUser === 0 || sc.privileged) errors.push(`${at}: runs as root or privileged`);
    for (const kind of ["requests", "limits"]) {
      for (const r of ["cpu", "memory"]) {
        if (!c.resources?.[kind]?.[r]) errors.push(`${at}: resources.${kind}.${r} missing`);
      }
    }
  }
  return errors;
}

// Every problem of one object, as "Kind/name: what".
export async function objectErrors(obj) {
  const name = `${obj?.kind}/${obj?.metadata?.name}`;
  if (!obj?.apiVersion || !obj?.kind) return [`${name}: no apiVersion or kind`];
  let Model;
  try {
    Model = await modelOf(obj);
  } catch (e) {
    return [`${name}: ${e.message}`];
  }
  const errors = [];
  // kustomize wraps a Secret's base64 at 76 columns; the API server's decoder
  // (Go's encoding/base64) skips the newlines, the schema's "byte" format
  // does not: validate what the server decodes.
  if (obj.kind === "Secret" && obj.data) {
    obj = { ...obj, data: Object.fromEntries(Object.entries(obj.data).map(([k, v]) => [k, String(v).replace(/[\r\n]/g, "")])) };
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    const details = (e.errors ?? []).map((d) => `${d.instancePath || "/"} ${d.message ?? d.keyword}`);
    errors.push(`schema: ${details.length ? details.join("; ") : e.message}`);
  }
  errors.push(...policyErrors(obj));
  return errors.map((e) => `${name}: ${e}`);
}

// Objects broken on purpose, each of which must fail.
const clone = (o) => JSON.parse(JSON.stringify(o));
function brokenVariants(objects) {
  const find = (kind) => objects.find((o) => o.kind === kind);
  const variants = [];
  const deploy = find("Deployment");
  const sts = find("StatefulSet");
  const smon = find("ServiceMonitor");
  const pmon = find("PodMonitor");
  const rule = find("PrometheusRule");
  if (deploy) {
    let o = clone(deploy); o.spec.replicas = "one";
    variants.push(["Deployment spec.replicas a string", o]);
    o = clone(deploy); delete o.spec.template.spec.containers[0].name;
    variants.push(["Deployment container without its required name", o]);
    o = clone(deploy); o.spec.template.spec.containers[0].ports[0].containerPort = "grpc";
    variants.push(["Deployment containerPort a string", o]);
    o = clone(deploy); o.spec.strategy.type = "Sometimes";
    variants.push(["Deployment strategy.type not an allowed value", o]);
    o = clone(deploy); o.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    delete o.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem;
    variants.push(["Deployment with readOnlyRootFilesystem misspelled", o]);
  }
  if (sts) {
    const o = clone(sts); delete o.spec.template.spec.securityContext.runAsNonRoot;
    variants.push(["StatefulSet without runAsNonRoot", o]);
  }
  if (smon) {
    const o = clone(smon); o.spec.endpoints = { port: "metrics" };
    variants.push(["ServiceMonitor endpoints an object, not a list", o]);
  }
  if (pmon) {
    const o = clone(pmon); o.spec.podMetricsEndpoints[0].interval = "fifteen seconds";
    variants.push(["PodMonitor interval not a duration", o]);
  }
  if (rule) {
    const o = clone(rule); delete o.spec.groups[0].name;
    variants.push(["PrometheusRule group without its name", o]);
  }
  return variants;
}

async function main() {
  let failed = false;
  const all = [];
  for (const tree of trees) {
    let objects;
    try {
      objects = render(tree);
    } catch (e) {
      console.error(`${tree}: kubectl kustomize failed:\n${e.stderr ?? e.message}`);
      failed = true;
      continue;
    }
    const counts = {};
    for (const obj of objects) {
      counts[obj.kind] = (counts[obj.kind] ?? 0) + 1;
      for (const error of await objectErrors(obj)) {
        console.error(`${tree}: ${error}`);
        failed = true;
      }
    }
    all.push(...objects);
    const byKind = Object.entries(counts).sort().map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(`${tree}: ${objects.length} objects (${byKind})`);
  }

  const variants = brokenVariants(all);
  let caught = 0;
  for (const [what, obj] of variants) {
    const errors = await objectErrors(obj);
    if (errors.length === 0) {
      console.error(`negative test: "${what}" was NOT refused`);
      failed = true;
    } else {
      caught++;
      console.log(`negative test: refused as it should be: ${what}: ${errors[0]}`);
    }
  }
  if (variants.length < 9) {
    console.error(`negative test: only ${variants.length} of 9 broken objects could be made (a kind is missing from the trees)`);
    failed = true;
  }
  console.log(`negative tests: ${caught} of ${variants.length} broken objects refused`);
  if (failed) {
    console.error(`validate.mjs: FAILED (deploy/k8s, ${relative(process.cwd(), k8sDir) || "."})`);
    process.exit(1);
  }
  console.log("validate.mjs: every object of every tree is valid");
}

await main();
