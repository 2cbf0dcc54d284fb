node='@NODE@'
js='@DIST@/containerd-shim-ts-v2.cjs'
if [ ! -f "$js" ]; then # moved or copied elsewhere: find the bundle next to the real file
  self=$(readlink -f "$0")
  js="${self%/*}/containerd-shim-ts-v2.cjs"
fi