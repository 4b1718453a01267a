import { isIP } from "node:net";

/**
 * The one validator of service addresses (gRPC targets), so every process
 * accepts the same forms: `host:port`, `[v6]:port`, `dns:///host:port`,
 * `dns://authority/host:port`, `ipv4:a.b.c.d:port[,...]`, `ipv6:[v6]:port[,...]`
 * and `unix:path`. A port is always required: grpc-js would otherwise dial 443.
 */
export const ADDRESS_FORMS = "host:port, [v6]:port, dns:///host:port, ipv4:, ipv6: or unix: target";

const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

function validPort(text: string): boolean {
  if (!/^\d{1,5}$/.test(text)) return false;
  const port = Number(text);
  return port >= 1 && port <= 65535;
}

/** `host:port` or `[v6]:port`. */
function hostPortProblem(value: string): string | undefined {
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) return "an IPv6 address in brackets is not closed";
    if (isIP(value.slice(1, close)) !== 6) return `${value.slice(0, close + 1)} is not an IPv6 address`;
    if (value[close + 1] !== ":") return "expected [v6]:port";
    return validPort(value.slice(close + 2)) ? undefined : "the port must be 1..65535";
  }
  const colon = value.lastIndexOf(":");
  if (colon < 0) return "a port is required (host:port)";
  const host = value.slice(0, colon);
  if (host.includes(":")) return "an IPv6 address must be in brackets ([v6]:port)";
  if (!HOST_NAME.test(host)) return `${JSON.stringify(host)} is not a host name or IPv4 address`;
  return validPort(value.slice(colon + 1)) ? undefined : "the port must be 1..65535";
}

/** Why `value` is not a service address, or undefined when it is one. */
export function addressProblem(value: string): string | undefined {
  if (/\s/.test(value)) return "contains whitespace";
  if (value.startsWith("unix:")) return value.length > "unix:".length ? undefined : "unix: needs a path";
  if (value.startsWith("dns:")) {
    const rest = value.slice("dns:".length);
    // dns:host:port, dns:///host:port or dns://authority/host:port
    const endpoint = rest.startsWith("//") ? rest.slice(rest.indexOf("/", 2) + 1 || rest.length) : rest;
    return endpoint === "" ? "dns: needs host:port" : hostPortProblem(endpoint);
  }
  for (const scheme of ["ipv4:", "ipv6:"] as const) {
    if (!value.startsWith(scheme)) continue;
    for (const endpoint of value.slice(scheme.length).split(",")) {
      const problem = hostPortProblem(endpoint);
      if (problem) return problem;
      const host = endpoint.startsWith("[") ? endpoint.slice(1, endpoint.indexOf("]")) : endpoint.split(":")[0];
      if (isIP(host ?? "") !== (scheme === "ipv4:" ? 4 : 6))
        return `${endpoint} is not an ${scheme.slice(0, 4)} address`;
    }
    return undefined;
  }
  return hostPortProblem(value);
}

export function isAddress(value: string): boolean {
  return addressProblem(value) === undefined;
}
