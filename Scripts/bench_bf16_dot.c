// Times accm_gemm_bf16_dot (the opt-in bf16 dot products, input rounded to bf16) against OpenBLAS sgemm on the
// same bf16 weights converted to fp32, on one thread, at LLaMA-7B prefill shapes. Build and run from the repository
// root (x86-64 with AVX-512 BF16):
//
//   clang -O3 -ISources/CKernels/include -ISources/CKernels -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       Scripts/bench_bf16_dot.c Sources/CKernels/*.c -lopenblas -lm -lpthread -o /tmp/bench_bf16_dot \
//       && OPENBLAS_NUM_THREADS=1 /tmp/bench_bf16_dot
//
// Each figure is the fastest of 3 calls; "max rel" is against sgemm on the unrounded input (so it measures the
// input's rounding, not an error of the kernel).
#include "accm_kernels.h"
#include "internal.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  int shapes[3][3]={{640,11008,4096},{640,4096,11008},{100,11008,4096}};
  for(int si=0;si<3;si++){ size_t M=shapes[si][0],N=shapes[si][1],K=shapes[si][2];
   float *x=malloc(M*K*4),*wf=malloc(N*K*4),*y=malloc(M*N*4),*yr=malloc(M*N*4); uint16_t *w=malloc(N*K*2),*xb=malloc(M*K*2);
   srand(2); for(size_t i=0;i<M*K;i++) x[i]=rand()/(float)RAND_MAX-0.5f; for(size_t i=0;i<N*K;i++){ w[i]=accm_bf16_bits((rand()/(float)RAND_MAX-0.5f)*0.05f); wf[i]=accm_bf16_value(w[i]); }
   double best=1e9, bs=1e9;
   for(int r=0;r<3;r++){ double s=now(); accm_round_to_bf16(x,xb,M*K); accm_gemm_bf16_dot(w,K,N,K,xb,K,M,y,N,0); double e=now()-s; if(e<best)best=e;
     s=now(); cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,x,K,wf,K,0,yr,N); e=now()-s; if(e<bs)bs=e; }
   double maxrel=0; for(size_t i=0;i<M*N;i++){ double d=fabs(y[i]-yr[i])/(fabs(yr[i])+1e-3); if(d>maxrel)maxrel=d; }
   double fl=2.0*M*N*K; printf("%zux%zux%zu: dot %.1f GFLOP/s, sgemm %.1f GFLOP/s, ratio %.2f (max rel %.3g)\n",M,N,K,fl/best/1e9,fl/bs/1e9,bs/best,maxrel);
   free(x);free(wf);free(y);free(yr);free(w);free(xb);}
}
