// An independent signer for Wharf's trust tests: npm's @sigstore/sign (sigstore-js) signs
// against the local Fulcio (certificate authority) and Rekor (transparency log) of
// @sigstore/mock, served in this process by nock, and @sigstore/oci attaches the bundle to an
// image in a registry as an OCI 1.1 referrer. Nothing here is Wharf's code, and nothing leaves
// the machine: the Sigstore services answer in-process, the registry is on loopback.
//
//   node sign.mjs keys DIR
//       new keys: DIR/fulcio.pem (the CA's root certificate), DIR/rekor.pub (the log's key),
//       DIR/signer.pub (a key pair for key-based signatures), their private halves beside them
//   node sign.mjs bundle DIR FILE [options]      print a bundle over FILE's bytes
//   node sign.mjs attach DIR REF [options]       sign the manifest REF names and attach it
//
// options:
//   --identity SUBJECT   the OIDC token's subject [ci@example.com]
//   --issuer URL         the OIDC token's issuer [https://issuer.test]
//   --dsse               an in-toto statement in a DSSE envelope (cosign v3's layout) whose
//                        subject is the artifact's digest, instead of a message signature
//   --key                signed by DIR/signer.key, not by a Fulcio certificate
//   --subject DIGEST     (--dsse) the digest the statement names [the artifact's]
//   --tamper             sign other bytes than the artifact's
//   --user U --password P  registry credentials (attach)
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { initializeCA, initializeCTLog, initializeTLog, fulcioHandler, rekorHandler } from '@sigstore/mock';
import { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness } from '@sigstore/sign';
import { bundleToJSON } from '@sigstore/bundle';
import { attachArtifactToImage } from '@sigstore/oci';

const FULCIO = 'https://fulcio.sigstore.test';
const REKOR = 'https://rekor.sigstore.test';
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

const [command, dir, target, ...rest] = process.argv.slice(2);
const opts = { identity: 'ci@example.com', issuer: 'https://issuer.test' };
for (let i = 0; i < rest.length; i++) {
  const flag = rest[i].replace(/^--/, '');
  if (['dsse', 'key', 'tamper'].includes(flag)) opts[flag] = true;
  else opts[flag] = rest[++i];
}

const readKey = (name) => crypto.createPrivateKey(fs.readFileSync(path.join(dir, name)));
const pair = (name) => {
  const privateKey = readKey(name);
  return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
};

async function keys() {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, curve] of [['fulcio', 'P-384'], ['rekor', 'P-256'], ['ctlog', 'P-256'], ['signer', 'P-256']]) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: curve });
    fs.writeFileSync(path.join(dir, `${name}.key`), privateKey.export({ format: 'pem', type: 'pkcs8' }));
    fs.writeFileSync(path.join(dir, `${name}.pub`), publicKey.export({ format: 'pem', type: 'spki' }));
  }
  const ca = await initializeCA(pair('fulcio.key'), await initializeCTLog(pair('ctlog.key')));
  fs.writeFileSync(path.join(dir, 'fulcio.pem'), pem('CERTIFICATE', ca.rootCertificate));
}

function pem(label, der) {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// The local Sigstore services, answering in this process.
async function services() {
  const ca = await initializeCA(pair('fulcio.key'), await initializeCTLog(pair('ctlog.key')));
  const tlog = await initializeTLog(REKOR, pair('rekor.key'));
  const fulcio = fulcioHandler(ca, { strict: true });
  const rekor = rekorHandler(tlog, { strict: true });
  const adapt = (fn) => async (_uri, body) => {
    const { statusCode, response, contentType } = await fn(typeof body === 'string' ? body : JSON.stringify(body));
    return [statusCode, response, { 'Content-Type': contentType || 'text/plain' }];
  };
  nock(FULCIO).persist().post(fulcio.path).reply(adapt(fulcio.fn));
  nock(REKOR).persist().post(rekor.path).reply(adapt(rekor.fn));
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
}

function token() {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: opts.issuer, sub: opts.identity, aud: 'sigstore', iat: now, exp: now + 600 };
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

// A signer of its own for key-based bundles: DIR/signer.key, named by its hint.
function keySigner() {
  const key = readKey('signer.key');
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  const hint = crypto.createHash('sha256').update(spki).digest('base64');
  const publicKey = pem('PUBLIC KEY', spki);
  return {
    sign: async (data) => ({ signature: crypto.sign('sha256', data, key), key: { $case: 'publicKey', publicKey, hint } }),
  };
}

async function sign(bytes) {
  await services();
  const signer = opts.key
    ? keySigner()
    : new FulcioSigner({ fulcioBaseURL: FULCIO, identityProvider: { getToken: async () => token() } });
  const witnesses = [new RekorWitness({ rekorBaseURL: REKOR, entryType: opts.dsse ? 'dsse' : 'hashedrekord' })];
  const signed = opts.tamper ? Buffer.concat([bytes, Buffer.from('\n')]) : bytes;
  let bundle;
  if (opts.dsse) {
    const digest = opts.subject ?? `sha256:${crypto.createHash('sha256').update(signed).digest('hex')}`;
    const [alg, hex] = digest.split(':');
    const statement = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'artifact', digest: { [alg]: hex } }],
      predicateType: 'https://sigstore.dev/cosign/sign/v1',
      predicate: {},
    };
    const builder = new DSSEBundleBuilder({ signer, witnesses, certificateChain: false });
    bundle = await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' });
  } else {
    bundle = await new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data: signed });
  }
  const json = bundleToJSON(bundle);
  // v0.3, as cosign v3 and sigstore-js 3 write it: the leaf certificate alone.
  json.mediaType = V03;
  const chain = json.verificationMaterial.x509CertificateChain;
  if (chain) {
    delete json.verificationMaterial.x509CertificateChain;
    json.verificationMaterial.certificate = chain.certificates[0];
  }
  return json;
}

async function attach() {
  const [name, reference] = target.includes('@') ? target.split('@') : target.split(/:(?=[^:/]+$)/);
  const slash = name.indexOf('/');
  const [registry, repo] = [name.slice(0, slash), name.slice(slash + 1)];
  const credentials = { username: opts.user ?? '', password: opts.password ?? '' };
  const auth = opts.user ? { Authorization: `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString('base64')}` } : {};
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';
  const response = await fetch(`http://${registry}/v2/${repo}/manifests/${reference}`, { headers: { Accept: accept, ...auth } });
  if (!response.ok) throw new Error(`GET manifest: ${response.status} ${await response.text()}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
  const bundle = await sign(bytes);
  const descriptor = await attachArtifactToImage({
    imageName: name,
    imageDigest: digest,
    artifact: Buffer.from(JSON.stringify(bundle)),
    mediaType: V03,
    credentials,
    annotations: { 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
  });
  console.log(JSON.stringify({ subject: digest, signature: descriptor.digest }));
}

switch (command) {
  case 'keys':
    await keys();
    break;
  case 'bundle':
    console.log(JSON.stringify(await sign(fs.readFileSync(target))));
    break;
  case 'attach':
    await attach();
    break;
  default:
    console.error('usage: node sign.mjs keys|bundle|attach DIR …');
    process.exit(2);
}
