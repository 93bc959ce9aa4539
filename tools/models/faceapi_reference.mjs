// Runs the face-api nets with the library itself (its bundled tfjs, CPU backend) so that
// faceapi.py can compare our ONNX rebuilds with the original on the same inputs.
// usage: node faceapi_reference.mjs FACE_API_ESM.mjs MODEL_DIR INPUT.bin N OUTPUT.json
// INPUT.bin: N x 112 x 112 x 3 float32 little-endian, RGB 0..255.
import fs from 'fs';
import { pathToFileURL } from 'url';

const [bundle, modelDir, inputPath, nArg, outputPath] = process.argv.slice(2);
// The ESM bundle picks its platform when loaded: under Node it wants Node's 'util' module, which
// the browser bundle stubs out. Presenting a worker global makes it use its browser platform,
// which needs only what Node has natively (TextEncoder, fetch, performance).
globalThis.WorkerGlobalScope = class {};
const faceapi = await import(pathToFileURL(bundle).href);
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

function load(net, name) {
  const manifest = JSON.parse(fs.readFileSync(`${modelDir}/${name}-weights_manifest.json`));
  const specs = manifest.flatMap((g) => g.weights);
  const buf = Buffer.concat(manifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(`${modelDir}/${p}`))));
  net.loadFromWeightMap(tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), specs));
}
load(faceapi.nets.ageGenderNet, 'age_gender_model');
load(faceapi.nets.faceExpressionNet, 'face_expression_model');
load(faceapi.nets.faceLandmark68Net, 'face_landmark_68_model');

const n = Number(nArg);
const raw = fs.readFileSync(inputPath);
const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const size = 112 * 112 * 3;
const images = [...Array(n).keys()].map((i) => tf.tensor3d(all.slice(i * size, (i + 1) * size), [112, 112, 3]));

const ageGender = await faceapi.nets.ageGenderNet.predictAgeAndGender(images);
const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(images);
const landmarks = await faceapi.nets.faceLandmark68Net.forward(images);
const order = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
fs.writeFileSync(outputPath, JSON.stringify({
  tfjs: tf.version_core,
  age: ageGender.map((r) => r.age),
  // [P(male), P(female)], the order of our ONNX output.
  gender: ageGender.map((r) => (r.gender === 'male'
    ? [r.genderProbability, 1 - r.genderProbability]
    : [1 - r.genderProbability, r.genderProbability])),
  expressions: expressions.map((e) => order.map((k) => e[k])),
  landmarks: await landmarks.array(),
}));
