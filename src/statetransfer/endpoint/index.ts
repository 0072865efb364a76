/**
 * The Endpoint layer: how the source cluster reaches the destination's transfer server.
 *
 * `createEndpoint` validates the options (throwing one EndpointOptionsError that lists every
 * problem) and returns an immutable Endpoint of the requested type:
 *
 *   type          objects (creation order)              source connects to (from health)
 *   LoadBalancer  Service/LoadBalancer                  LB ip (else hostname) : service port
 *   NodePort      Service/NodePort                      node ExternalIP > InternalIP > Hostname : node port
 *   ClusterIP     Service/ClusterIP                     cluster IP : service port (same cluster / flat network)
 *   Route         Service/ClusterIP, Route passthrough  route host : 443, SNI route host
 *   Ingress       Service/ClusterIP, Ingress (nginx)    controller ip (else hostname) : 443, SNI rule host
 *
 * Every Service selects the server pod by `endpoint.podSelector`; the server pod builder must put
 * those labels on the server pod.
 */
import type { Endpoint } from '../types';
import { endpointKind } from '../registry';
import { resolveEndpointOptions, type EndpointOptions } from './options';

/**
 * Builds the endpoint described by `options`; see the table above and each class.
 *
 * @throws EndpointOptionsError when the options are invalid, listing every problem (`problems`).
 */
export function createEndpoint(options: EndpointOptions): Endpoint {
  resolveEndpointOptions(options); // validates everything, including an unknown type, before dispatch
  return endpointKind(options.type).create(options);
}

export {
  BACKING_SERVICE_ROLE,
  DEFAULT_EXTERNAL_PORT,
  ENDPOINT_ROLE,
  EndpointOptionsError,
  NODE_PORT_MAX,
  NODE_PORT_MIN,
  SERVER_ROLE,
  TRANSFER_PORT_NAME,
  hostnameProblem,
  resolveEndpointOptions,
  validateEndpointOptions,
} from './options';
export type { EndpointOptions, ResolvedEndpointOptions } from './options';
export { ENDPOINT_TYPES } from '../types';
export { serverPodSelector } from './common';
export { ClusterIPEndpoint, LoadBalancerEndpoint, NodePortEndpoint } from './services';
export { RouteEndpoint } from './route';
export type { RouteIngressCondition, RouteObject } from './route';
export { INGRESS_NGINX_ANNOTATIONS, IngressEndpoint } from './ingress';
